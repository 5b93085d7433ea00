import { createHash, randomBytes as cryptoRandomBytes } from 'node:crypto';

/** The first field of every join token: the format's name and version. */
export const JOIN_TOKEN_PREFIX = 'msgjt1';

/** Bytes of a cluster secret (256 bits). */
export const CLUSTER_SECRET_BYTES = 32;

/** What a join token carries: the cluster it admits to and that cluster's secret. */
export interface JoinToken {
  /** The cluster's id (raft-ts's), so a joining node checks it joins the cluster it means. */
  readonly clusterId: string;
  /** The cluster secret that peers sign their RPCs with (raft-ts `PeerAuth`), {@link CLUSTER_SECRET_BYTES} bytes. */
  readonly secret: Uint8Array;
  /** The token as text: `msgjt1.<cluster id>.<secret, base64url>.<check>`. */
  readonly text: string;
}

const CLUSTER_ID = /^[A-Za-z0-9_-]{1,128}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
const CHECK = /^[0-9a-f]{8}$/;

/** The check field: the first 8 hex digits of the SHA-256 of everything before it (catches typos and damaged files). */
function checkOf(head: string): string {
  return createHash('sha256').update(head, 'utf8').digest('hex').slice(0, 8);
}

/** The token of `clusterId` with `secret` (exactly {@link CLUSTER_SECRET_BYTES} bytes). */
export function joinTokenOf(clusterId: string, secret: Uint8Array): JoinToken {
  if (!CLUSTER_ID.test(clusterId)) throw new RangeError(`cluster id ${JSON.stringify(clusterId)} cannot go in a join token`);
  if (secret.byteLength !== CLUSTER_SECRET_BYTES) throw new RangeError(`a cluster secret has ${CLUSTER_SECRET_BYTES} bytes, got ${secret.byteLength}`);
  const head = `${JOIN_TOKEN_PREFIX}.${clusterId}.${Buffer.from(secret).toString('base64url')}`;
  return { clusterId, secret: Uint8Array.from(secret), text: `${head}.${checkOf(head)}` };
}

/**
 * A new token for `clusterId` with a fresh secret of {@link CLUSTER_SECRET_BYTES}
 * random bytes (`randomBytes` defaults to `crypto.randomBytes`).
 */
export function newJoinToken(clusterId: string, randomBytes: (size: number) => Uint8Array = cryptoRandomBytes): JoinToken {
  return joinTokenOf(clusterId, randomBytes(CLUSTER_SECRET_BYTES));
}

/**
 * Reads a token written by {@link joinTokenOf} (surrounding white space
 * ignored). Returns a sentence saying what is wrong, never the token itself
 * (a log or an error message must not carry a secret), when it is not one.
 */
export function parseJoinToken(text: string): JoinToken | string {
  const parts = text.trim().split('.');
  if (parts.length !== 4 || parts[0] !== JOIN_TOKEN_PREFIX) return `not a join token (expected ${JOIN_TOKEN_PREFIX}.<cluster id>.<secret>.<check>)`;
  const [, clusterId, secret, check] = parts as [string, string, string, string];
  if (!CLUSTER_ID.test(clusterId) || !SECRET.test(secret) || !CHECK.test(check)) return 'not a join token (a field has the wrong length or characters)';
  if (checkOf(`${JOIN_TOKEN_PREFIX}.${clusterId}.${secret}`) !== check) return 'not a join token (its check does not match: mistyped or damaged)';
  const bytes = Buffer.from(secret, 'base64url');
  if (bytes.byteLength !== CLUSTER_SECRET_BYTES || bytes.toString('base64url') !== secret) return 'not a join token (the secret does not decode)';
  return joinTokenOf(clusterId, bytes);
}
