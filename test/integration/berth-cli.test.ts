/** Issue #2 acceptance 1, second half: the same scenario through the berth CLI. */
import { before, after, describe } from 'node:test';
import { startDaemon, type Daemon } from './harness.js';
import { scenario } from './scenario.js';

describe('berth CLI against berthd', () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon();
  });
  after(async () => {
    await d?.stop();
  });
  scenario('berth', () => d);
});
