/**
 * Which failures to get metadata or a producer id a Kafka send waits out (up to its delivery
 * budget) and which fail it at once. A broker back from an unclean stop answers for seconds
 * with partitions that have no leader yet; a send that failed then was lost by a caller that
 * could not retry it (the agent's log tailer, before 495538d), so the producer must wait.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { producerMayWait } from '../src/kafka/producer.js';

test('a send waits out a cluster coming back: no connection, no leader yet, a coordinator loading', () => {
  // the producer's own "no leader for <topic>" while a restarted broker recovers its logs
  const noLeader = Object.assign(new Error('no leader for cordon.logs.v1'), { retriable: true });
  assert.equal(producerMayWait(noLeader), true);
  assert.equal(producerMayWait(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })), true);
  assert.equal(producerMayWait(Object.assign(new Error('timed out'), { code: 'PLT_KFK_TIMEOUT' })), true);
  // a broker's answer, nested as the client nests it
  const loading = Object.assign(new Error('failed'), {
    errors: [Object.assign(new Error('COORDINATOR_LOAD_IN_PROGRESS'), { apiId: 'COORDINATOR_LOAD_IN_PROGRESS' })],
  });
  assert.equal(producerMayWait(loading), true);
  const leaderless = Object.assign(new Error('failed'), {
    cause: Object.assign(new Error('LEADER_NOT_AVAILABLE'), { apiId: 'LEADER_NOT_AVAILABLE' }),
  });
  assert.equal(producerMayWait(leaderless), true);
});

test('a send fails at once on what waiting cannot cure: refused credentials, a missing ACL, a plain error', () => {
  assert.equal(producerMayWait(Object.assign(new Error('bad password'), { code: 'PLT_KFK_AUTHENTICATION' })), false);
  const acl = Object.assign(new Error('failed'), {
    errors: [Object.assign(new Error('TOPIC_AUTHORIZATION_FAILED'), { apiId: 'TOPIC_AUTHORIZATION_FAILED' })],
  });
  assert.equal(producerMayWait(acl), false);
  // a security failure wins even when a retriable flag or a network code is on the way
  assert.equal(
    producerMayWait(
      Object.assign(new Error('handshake'), {
        retriable: true,
        cause: Object.assign(new Error('auth'), { code: 'PLT_KFK_AUTHENTICATION' }),
      }),
    ),
    false,
  );
  assert.equal(producerMayWait(new Error('record too large')), false);
  assert.equal(producerMayWait(Object.assign(new Error('x'), { apiId: 'INVALID_RECORD' })), false);
});
