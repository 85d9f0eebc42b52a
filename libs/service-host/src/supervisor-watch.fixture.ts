// A supervised process that does nothing but watch its supervisor (supervisor-watch.test.ts):
// writes `<marker>.ready` once watching, `<marker>` when the supervisor is gone, then exits.
import { writeFileSync } from 'node:fs';
import { watchSupervisor } from './supervisor-watch.js';

const marker = process.argv[2]!;
const watch = watchSupervisor();
if (watch === undefined) throw new Error('not supervised');
// Keeps running until the supervisor goes (the watch alone would, but be explicit).
const keepAlive = setInterval(() => undefined, 60_000);
writeFileSync(`${marker}.ready`, '');
await watch.gone;
writeFileSync(marker, 'supervisor gone');
clearInterval(keepAlive);
watch.dispose();
