import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** What an identity may be allowed: publish to or subscribe to (stream, heartbeat) a topic, or admin (`/status`, `/metrics`). */
export type Permission = 'publish' | 'subscribe' | 'admin';

/** A set of topic ids: inclusive ranges of u64s, all of them, or none. Immutable. */
export class TopicSet {
  /** Every topic id. */
  static readonly ALL = new TopicSet(true, []);
  /** No topic id. */
  static readonly NONE = new TopicSet(false, []);
  readonly #all: boolean;
  readonly #ranges: readonly (readonly [bigint, bigint])[];

  private constructor(all: boolean, ranges: readonly (readonly [bigint, bigint])[]) {
    this.#all = all;
    this.#ranges = ranges;
  }

  /**
   * The ids of the inclusive ranges `[first, last]` (a single id: `[id, id]`).
   * @throws RangeError when a range ends before it starts or is not of u64s.
   */
  static of(ranges: readonly (readonly [bigint, bigint])[]): TopicSet {
    for (const [first, last] of ranges) {
      if (first < 0n || last > 0xffff_ffff_ffff_ffffn || last < first) throw new RangeError(`not a range of topic ids: ${first}-${last}`);
    }
    return ranges.length === 0 ? TopicSet.NONE : new TopicSet(false, ranges.map(([a, b]) => [a, b] as const));
  }

  /** Whether `topicID` is in the set. */
  has(topicID: bigint): boolean {
    if (this.#all) return true;
    for (const [first, last] of this.#ranges) if (topicID >= first && topicID <= last) return true;
    return false;
  }
}

/** What an identity may do. */
export interface IdentityPermissions {
  /** Topics it may publish to (single and batch publishes). */
  readonly publish: TopicSet;
  /** Topics it may read (`GET /messaging/messages`) and heartbeat. */
  readonly subscribe: TopicSet;
  /** Whether it may read `/status` and `/metrics`. */
  readonly admin: boolean;
}

/** One client identity of an {@link IdentityAuthorizer}. */
export interface Identity {
  /** Its name: unique; what logs and the per-client stream limit know it by. */
  readonly name: string;
  /** Lower-case hex SHA-256 of its bearer token (see {@link hashToken}); the token itself is never kept. */
  readonly tokenSha256?: string | undefined;
  /** The subject of its client certificate (e.g. `CN=svc-a`), for a {@link certSubjectResolver}. */
  readonly certSubject?: string | undefined;
  /** What it may do. */
  readonly permissions: IdentityPermissions;
}

/**
 * Decides who sent a request and what they may do. The handler calls it
 * before it dispatches any client route (`/health`, `/ready` and `/raft/*`
 * aside): no identity is 401 `UNAUTHENTICATED`, an identity without the
 * permission 403 `FORBIDDEN`.
 */
export interface Authorizer {
  /** The name of the identity whose credential `req` carries, or `undefined` (none, or not known). */
  authenticate(req: IncomingMessage): string | undefined;
  /** Whether `identity` has `permission` (on `topicID`, for publish and subscribe). */
  permits(identity: string, permission: Permission, topicID?: bigint): boolean;
}

/** What `/metrics` shows of an authorizer's file (an {@link IdentityAuthorizer} has it). */
export interface AuthStats {
  /** Identities known now. */
  readonly identityCount: number;
  /** Reloads so far that succeeded (`true`) or failed and kept the identities they had (`false`). */
  reloads(succeeded: boolean): number;
}

/**
 * Another way than a bearer token to tell who sent a request: given the
 * request and the identities known now, the name of the one it proves to be,
 * or `undefined`.
 */
export type IdentityResolver = (req: IncomingMessage, identities: readonly Identity[]) => string | undefined;

/** Lower-case hex SHA-256 of `token`: what an identity stores instead of its token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or `undefined`. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^\s*bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * A resolver matching a client certificate's subject, as `subjectOf` reads
 * it from the request (TLS), to the identity whose `certSubject` equals it.
 */
export function certSubjectResolver(subjectOf: (req: IncomingMessage) => string | undefined): IdentityResolver {
  return (req, identities) => {
    const subject = subjectOf(req);
    if (subject === undefined || subject === '') return undefined;
    return identities.find((identity) => identity.certSubject === subject)?.name;
  };
}

const AUTHENTICATED = Symbol('msg.http.authenticatedIdentity');
type Authenticated = IncomingMessage & { [AUTHENTICATED]?: string };

/**
 * The identity the handler authenticated `req` as, or `undefined` (no
 * authorizer, or not authenticated yet). For `Limits`' `identify`, so that
 * streams are counted per identity.
 */
export function authenticatedIdentity(req: IncomingMessage): string | undefined {
  return (req as Authenticated)[AUTHENTICATED];
}

/** Records who `req` was authenticated as (the handler does, before dispatch). @internal */
export function markAuthenticated(req: IncomingMessage, identity: string): void {
  (req as Authenticated)[AUTHENTICATED] = identity;
}

/** Options of {@link IdentityAuthorizer}. */
export interface IdentityAuthorizerOptions {
  /** Tried in order when a request carries no bearer token, e.g. {@link certSubjectResolver}. */
  resolvers?: readonly IdentityResolver[];
}

interface Known {
  readonly identity: Identity;
  readonly hash: Buffer | undefined;
}

/**
 * An {@link Authorizer} over a list of identities, each with the SHA-256 of
 * its bearer token and its permissions. A presented token is hashed and
 * compared with every identity's hash with `crypto.timingSafeEqual` (no
 * early exit); the token is never kept or logged. {@link replace} swaps the
 * list at once (a reload of the auth file).
 */
export class IdentityAuthorizer implements Authorizer, AuthStats {
  readonly #resolvers: readonly IdentityResolver[];
  #known: readonly Known[] = [];
  #byName = new Map<string, Identity>();
  #reloads = [0, 0];

  /** @throws RangeError when two identities have the same name or a `tokenSha256` is not 64 hex digits. */
  constructor(identities: readonly Identity[], options: IdentityAuthorizerOptions = {}) {
    this.#resolvers = options.resolvers ?? [];
    this.replace(identities);
  }

  /** Replaces every identity (validated as by the constructor; on a throw the old ones stay). */
  replace(identities: readonly Identity[]): void {
    const byName = new Map<string, Identity>();
    const known: Known[] = [];
    for (const identity of identities) {
      if (byName.has(identity.name)) throw new RangeError(`duplicate identity name ${JSON.stringify(identity.name)}`);
      byName.set(identity.name, identity);
      const hex = identity.tokenSha256;
      if (hex !== undefined && !/^[0-9a-fA-F]{64}$/.test(hex)) throw new RangeError(`identity ${JSON.stringify(identity.name)}: tokenSha256 must be 64 hex digits`);
      known.push({ identity, hash: hex === undefined ? undefined : Buffer.from(hex, 'hex') });
    }
    this.#known = known;
    this.#byName = byName;
  }

  /** Counts a reload of the identities' source: `succeeded` or failed (see {@link AuthStats}). */
  recordReload(succeeded: boolean): void {
    this.#reloads[succeeded ? 0 : 1]!++;
  }

  /** {@inheritDoc AuthStats.reloads} */
  reloads(succeeded: boolean): number {
    return this.#reloads[succeeded ? 0 : 1]!;
  }

  /** {@inheritDoc AuthStats.identityCount} */
  get identityCount(): number {
    return this.#known.length;
  }

  /** The bearer token's identity, else the first resolver's answer that names a known identity. */
  authenticate(req: IncomingMessage): string | undefined {
    const token = bearerToken(req);
    if (token !== undefined) {
      const presented = createHash('sha256').update(token, 'utf8').digest();
      let found: string | undefined;
      for (const { identity, hash } of this.#known) {
        if (hash !== undefined && timingSafeEqual(presented, hash) && found === undefined) found = identity.name;
      }
      return found;
    }
    for (const resolve of this.#resolvers) {
      const name = resolve(req, this.#known.map((k) => k.identity));
      if (name !== undefined && this.#byName.has(name)) return name;
    }
    return undefined;
  }

  /** Whether the identity named `identity` (known now) has `permission`, on `topicID` for publish and subscribe. */
  permits(identity: string, permission: Permission, topicID?: bigint): boolean {
    const permissions = this.#byName.get(identity)?.permissions;
    if (permissions === undefined) return false;
    if (permission === 'admin') return permissions.admin;
    return topicID !== undefined && permissions[permission].has(topicID);
  }
}
