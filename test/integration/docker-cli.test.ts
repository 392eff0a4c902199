/** Issue #2 acceptance 1: the real docker CLI against berthd. */
import { before, after, describe } from 'node:test';
import { startDaemon, type Daemon } from './harness.js';
import { scenario } from './scenario.js';

describe('docker CLI against berthd', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });
  scenario('docker', () => d);
});
