import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { authenticatedIdentity, IdentityAuthorizer, type IdentityResolver } from '@msg/http';
import { loadAuthFile } from './auth-file.js';
import type { JsonLogger } from './logger.js';

/** A node's client authentication: the authorizer the handler consults, and its reload. */
export interface ClientAuth {
  /** The identities of the auth file; counts reloads. */
  readonly authorizer: IdentityAuthorizer;
  /**
   * Reads the auth file again: a good file replaces every identity at once
   * (logged `auth file reloaded`); a bad one leaves the current identities in
   * place (logged as an error `auth file reload failed`, naming the file and
   * the field). Both are counted. Resolves true when the file was taken.
   */
  reload(): Promise<boolean>;
  /** Stops reloading on SIGHUP. Idempotent. */
  close(): void;
}

/** Whether `config` turns client authentication on (an auth file is configured). */
export function clientAuthConfigured(config: { authFile?: string | undefined }): boolean {
  return config.authFile !== undefined;
}

/**
 * The per-client identity of the stream limits: the authenticated identity
 * when there is one (`identity:<name>`), else the remote address.
 */
export function streamClientOf(req: IncomingMessage): string {
  const identity = authenticatedIdentity(req);
  return identity === undefined ? (req.socket.remoteAddress ?? '') : `identity:${identity}`;
}

/**
 * The subject of the client certificate `req` came with, as an auth file's
 * `certSubject` names it: the subject's attributes in the certificate's
 * order, `KEY=value` joined by `, ` (a certificate with only a common name
 * `svc-a` is `CN=svc-a`; one with `O=acme` then `CN=svc-a` is
 * `O=acme, CN=svc-a`). `undefined` when the connection is not TLS, has no
 * client certificate, or its certificate did not verify against the CA
 * (`socket.authorized` false).
 */
export function clientCertSubject(req: IncomingMessage): string | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return undefined;
  const subject = socket.getPeerCertificate().subject as Record<string, string | string[]> | undefined;
  if (subject === undefined) return undefined;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(subject)) {
    for (const one of Array.isArray(value) ? value : [value]) parts.push(`${key}=${one}`);
  }
  return parts.length === 0 ? undefined : parts.join(', ');
}

/** Options of {@link openClientAuth}. */
export interface ClientAuthOptions {
  /** Other ways to an identity than a bearer token (the TLS work: client-certificate subjects). */
  resolvers?: readonly IdentityResolver[];
  /** Where SIGHUP comes from. Default `process`; `null`: no signal (call `reload` instead). */
  signals?: Pick<NodeJS.Process, 'on' | 'off'> | null;
}

/**
 * Reads the auth file at `path` (a bad one throws `AuthFileError`, code
 * `INVALID_CONFIG`: exit 64 naming the file and the field) and reloads it on
 * every SIGHUP. Tokens never reach a log: the file holds only their hashes.
 */
export async function openClientAuth(path: string, logger: JsonLogger, options: ClientAuthOptions = {}): Promise<ClientAuth> {
  const identities = await loadAuthFile(path);
  const authorizer = new IdentityAuthorizer(identities, { resolvers: options.resolvers ?? [] });
  logger.info('client authentication on', { authFile: path, identities: identities.length });
  let reloading: Promise<boolean> | undefined;
  const reload = async (): Promise<boolean> => {
    try {
      const next = await loadAuthFile(path);
      authorizer.replace(next);
      authorizer.recordReload(true);
      logger.info('auth file reloaded', { authFile: path, identities: next.length });
      return true;
    } catch (error) {
      authorizer.recordReload(false);
      logger.error('auth file reload failed', { authFile: path, error: (error as Error).message, kept: authorizer.identityCount });
      return false;
    }
  };
  const onSignal = (): void => {
    // Reloads one after the other: a late read never replaces a newer file.
    reloading = (reloading ?? Promise.resolve(true)).then(reload, reload);
  };
  const signals = options.signals === undefined ? process : options.signals;
  signals?.on('SIGHUP', onSignal);
  let closed = false;
  return {
    authorizer,
    reload,
    close() {
      if (closed) return;
      closed = true;
      signals?.off('SIGHUP', onSignal);
    },
  };
}
