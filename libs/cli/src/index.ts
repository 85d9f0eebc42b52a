export { run } from './main.js';
export { ExitCode, type CommandIO, type RegisterCommand } from './io.js';
