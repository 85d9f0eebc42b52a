import { connect } from 'node:net';
import { request } from 'node:http';

/** Resolves with undefined when a TCP connection opens within `timeoutMs`, else with the reason. */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (reason: string | undefined): void => {
      socket.destroy();
      resolve(reason);
    };
    socket.setTimeout(timeoutMs, () => finish(`no answer within ${timeoutMs} ms`));
    socket.once('connect', () => finish(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message));
  });
}

/** Where the Docker engine API is: DOCKER_HOST (unix:// or tcp://), else /var/run/docker.sock. */
export function dockerEndpoint(env: NodeJS.ProcessEnv): { socketPath: string } | { host: string; port: number } {
  const dockerHost = env.DOCKER_HOST?.trim();
  if (!dockerHost) return { socketPath: '/var/run/docker.sock' };
  if (dockerHost.startsWith('unix://')) return { socketPath: dockerHost.slice('unix://'.length) };
  const parsed = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return { host: parsed.hostname, port: parsed.port === '' ? 2375 : Number(parsed.port) };
}

export function describeEndpoint(endpoint: ReturnType<typeof dockerEndpoint>): string {
  return 'socketPath' in endpoint ? endpoint.socketPath : `${endpoint.host}:${endpoint.port}`;
}

/** True when the Docker engine answers its `/_ping` within `timeoutMs`. */
export function dockerAnswers(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ ...dockerEndpoint(env), path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.once('error', () => resolve(false));
    req.end();
  });
}
