// A supervised service whose start never finishes (host.test.ts): it holds a timer, as a start
// waiting on a socket would, so only the boot grace can end it once its supervisor is gone.
import { runService } from './host.js';

const code = await runService({
  name: 'probe',
  principal: 'svc.policy',
  settings: () => {
    setInterval(() => undefined, 1000);
    process.stdout.write('starting\n');
    return new Promise<never>(() => undefined);
  },
  start: () => Promise.reject(new Error('never reached')),
});
process.exitCode = code;
