export * from './netns.js';
export * from './kafka.js';
export * from './lab.js';
export * from './fixtures.js';
export * from './wait.js';
export * from './tarball.js';
export * from './vcsim.js';
export * from './corpus.js';
