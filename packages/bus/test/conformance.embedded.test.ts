import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, type Bus } from '../src/index.js';
import { runConformance } from './conformance.js';

runConformance('embedded', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-bus-'));
  const ctx = createContext({ log: silentLogger });
  let bus: Bus = createEmbeddedBus({ dataDir, ctx });
  return {
    bus,
    reopen: async () => {
      await bus.close();
      bus = createEmbeddedBus({ dataDir, ctx });
      return bus;
    },
    cleanup: async () => {
      await bus.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});
