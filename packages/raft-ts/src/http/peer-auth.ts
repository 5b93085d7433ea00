import { createHash, createHmac, hkdfSync, randomBytes as cryptoRandomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { RaftError } from '../errors.js';
import type { RaftRpc } from './paths.js';
import { RaftPaths } from './paths.js';

/** Names of the headers that carry a peer RPC's signature (lower case, as Node presents them). */
export const PeerAuthHeaders = {
  /** Milliseconds since the epoch when the sender signed, decimal. */
  timestamp: 'x-raft-timestamp',
  /** `<sender id>.<sequence>`: the sender id is random per signer (16 bytes, base64url), the sequence counts from 1. */
  nonce: 'x-raft-nonce',
  /** The URL of the node the request is meant for (its identity), as the sender names it. */
  target: 'x-raft-target',
  /** base64url of the HMAC-SHA256 of the canonical string (see {@link PeerAuth}). */
  signature: 'x-raft-signature',
} as const;

/** Why {@link PeerAuth.verify} refused a request. */
export const PeerAuthRejections = {
  /** A signature header is absent. */
  missing: 'the request is not signed',
  /** A signature header does not have its format. */
  malformed: 'the signature headers are malformed',
  /** This node has no cluster secret yet (it is bootstrapping or has not been given one). */
  'no-secret': 'this node has no cluster secret yet',
  /** The signature does not match: made with another secret, or the request was altered. */
  'bad-signature': 'the signature does not match',
  /** The timestamp is outside the accepted window. */
  stale: 'the signature timestamp is outside the accepted window',
  /** The nonce was seen before: a replay. */
  replay: 'the request was already received (replay)',
  /** Signed for another node. */
  'wrong-target': 'the request was signed for another node',
  /** The body was consumed (parsed) before the handler could verify its bytes. */
  'unverifiable-body': 'the request body was consumed before it could be verified',
  /** Too many senders are being tracked for replay protection right now. */
  'too-many-senders': 'too many peers are sending right now',
} as const;

/** A key of {@link PeerAuthRejections}. */
export type PeerAuthRejection = keyof typeof PeerAuthRejections;

/** Options of {@link PeerAuth}. */
export interface PeerAuthOptions {
  /**
   * The cluster secret (at least 32 bytes; random). Can be given later with
   * {@link PeerAuth.setSecret}: until then, every request is refused
   * (`no-secret`) and signing throws.
   */
  secret?: Uint8Array;
  /** How far a timestamp may be from this node's clock, either way, in milliseconds. Default 30000. */
  windowMs?: number;
  /** The clock, in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Random bytes (for this signer's sender id). Default `crypto.randomBytes`. */
  randomBytes?: (size: number) => Uint8Array;
  /** Most senders tracked at once for replay protection. Default 4096. */
  maxSenders?: number;
}

/** What {@link PeerAuth.verify} says of a request. */
export type PeerAuthResult = { ok: true } | { ok: false; reason: PeerAuthRejection; message: string };

/** The least secret length accepted, in bytes. */
export const MIN_SECRET_BYTES = 32;

/** The first line of every canonical string: the version of the scheme. */
const SCHEME = 'raft-ts-peer-auth-v1';
/** HKDF `info` that derives the HMAC key from the secret. */
const KEY_INFO = 'raft-ts peer-auth v1';
/** How many sequence numbers behind the highest one seen are still accepted once (out-of-order arrival). */
const SEQUENCE_WINDOW = 1024;
/** A sender id: 16 bytes in base64url. */
const SENDER_ID = /^[A-Za-z0-9_-]{22}$/;
/** A sequence: 1 to 15 decimal digits, no leading zero. */
const SEQUENCE = /^[1-9][0-9]{0,14}$/;
const TIMESTAMP = /^[0-9]{1,15}$/;
const SIGNATURE = /^[A-Za-z0-9_-]{43}$/;
const RPCS = new Set<string>(Object.values(RaftPaths));

/** Replay state of one sender: the highest sequence seen and which of the {@link SEQUENCE_WINDOW} below it were seen. */
interface Sender {
  highest: number;
  /** Bit i set: `highest - i` was seen. */
  seen: Uint32Array;
  /** This node's clock when the sender was last accepted. */
  lastSeenMs: number;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** A target URL as both sides compare it: without trailing slashes. */
function normalizeTarget(target: string): string {
  return target.replace(/\/+$/, '');
}

/**
 * Authenticates raft RPCs between the peers of one cluster with a shared
 * secret. One instance serves both sides of a node: {@link HttpTransport}
 * signs with it, {@link createRaftHandler} verifies with it.
 *
 * The HMAC key is HKDF-SHA256(secret, salt empty, info
 * `"raft-ts peer-auth v1"`, 32 bytes). A request is signed over this
 * canonical string (lines joined by `\n`, UTF-8):
 *
 * ```text
 * raft-ts-peer-auth-v1
 * POST
 * <rpc: vote | append | snapshot | timeout-now | join | leave>
 * <target URL, no trailing slash>
 * <timestamp: ms since the epoch, decimal>
 * <nonce: sender id "." sequence>
 * <SHA-256 of the body, lower-case hex>
 * ```
 *
 * and the signature (base64url HMAC-SHA256), timestamp, nonce and target go
 * in the {@link PeerAuthHeaders}. The whole body is verified before any of
 * it is decoded (a snapshot travels in chunks of one request each, every
 * chunk verified on its own). A request is refused when the signature does
 * not match (compared in constant time), its timestamp is more than
 * `windowMs` from this node's clock, its nonce was already accepted (each
 * signer has a random sender id and counts its requests; the receiver
 * remembers, per sender, the highest sequence and the 1024 below it), or it
 * was signed for another node. Replay state is kept only for senders whose
 * signature verified, so forged requests cannot fill it; a sender idle for
 * more than twice the window is forgotten (its old requests are stale by
 * then anyway).
 */
export class PeerAuth {
  #key: Buffer | undefined;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #maxSenders: number;
  readonly #senderId: string;
  #sequence = 0;
  readonly #senders = new Map<string, Sender>();
  readonly #rejected: Record<PeerAuthRejection, number>;
  #accepted = 0;

  /**
   * Makes a signer and verifier; no I/O.
   * @throws RaftError `BAD_REQUEST` when the secret is shorter than {@link MIN_SECRET_BYTES}
   *   or a numeric option is not a positive safe integer.
   */
  constructor(options: PeerAuthOptions = {}) {
    this.#windowMs = options.windowMs ?? 30_000;
    this.#maxSenders = options.maxSenders ?? 4096;
    for (const [name, value] of [['windowMs', this.#windowMs], ['maxSenders', this.#maxSenders]] as const) {
      if (!Number.isSafeInteger(value) || value <= 0) throw new RaftError('BAD_REQUEST', `${name} must be a positive safe integer, got ${String(value)}`);
    }
    this.#now = options.now ?? Date.now;
    this.#senderId = Buffer.from((options.randomBytes ?? cryptoRandomBytes)(16)).toString('base64url');
    this.#rejected = Object.fromEntries(Object.keys(PeerAuthRejections).map((k) => [k, 0])) as Record<PeerAuthRejection, number>;
    if (options.secret !== undefined) this.setSecret(options.secret);
  }

  /** Whether a secret is set (requests can be signed and verified). */
  get hasSecret(): boolean {
    return this.#key !== undefined;
  }

  /**
   * Sets (or replaces) the cluster secret.
   * @throws RaftError `BAD_REQUEST` when it is not a `Uint8Array` of at least {@link MIN_SECRET_BYTES} bytes.
   */
  setSecret(secret: Uint8Array): void {
    if (!(secret instanceof Uint8Array) || secret.byteLength < MIN_SECRET_BYTES) {
      throw new RaftError('BAD_REQUEST', `the cluster secret must be at least ${MIN_SECRET_BYTES} bytes`);
    }
    this.#key = Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), KEY_INFO, 32));
  }

  /** Requests accepted by {@link PeerAuth.verify} so far. */
  get accepted(): number {
    return this.#accepted;
  }

  /** Requests refused by {@link PeerAuth.verify} so far, by reason (a copy). */
  get rejected(): Readonly<Record<PeerAuthRejection, number>> {
    return { ...this.#rejected };
  }

  /** Requests refused so far, all reasons together. */
  get rejectedTotal(): number {
    let total = 0;
    for (const n of Object.values(this.#rejected)) total += n;
    return total;
  }

  /**
   * The signature headers of one request of `rpc` to `target` (the peer's
   * URL) with `body`; each call uses a new nonce.
   * @throws RaftError `UNAUTHENTICATED` when no secret is set.
   */
  sign(rpc: RaftRpc, target: string, body: Uint8Array): Record<string, string> {
    const key = this.#key;
    if (key === undefined) throw new RaftError('UNAUTHENTICATED', `cannot sign ${rpc}: ${PeerAuthRejections['no-secret']}`);
    const timestamp = String(Math.floor(this.#now()));
    const nonce = `${this.#senderId}.${++this.#sequence}`;
    const normalized = normalizeTarget(target);
    return {
      [PeerAuthHeaders.timestamp]: timestamp,
      [PeerAuthHeaders.nonce]: nonce,
      [PeerAuthHeaders.target]: normalized,
      [PeerAuthHeaders.signature]: mac(key, RaftPaths[rpc], normalized, timestamp, nonce, body).toString('base64url'),
    };
  }

  /**
   * Verifies one request of the RPC whose path segment is `segment` (a value
   * of `RaftPaths`), with its headers and its whole body. `self`, when given,
   * is this node's URL: a request signed for another target is refused. On
   * success the nonce is remembered (a second identical request is a replay).
   * Counts every outcome; never throws.
   */
  verify(segment: string, headers: IncomingHttpHeaders, body: Uint8Array | undefined, self?: string): PeerAuthResult {
    const result = this.#check(segment, headers, body, self);
    if (result.ok) this.#accepted++;
    else this.#rejected[result.reason]++;
    return result;
  }

  /**
   * The checks of {@link PeerAuth.verify} that need no body: headers present
   * and well-formed, a secret set, the timestamp within the window. A handler
   * calls it before reading a body, so a request that cannot verify is
   * refused without buffering it. Counts a refusal (not a success); never throws.
   */
  screen(segment: string, headers: IncomingHttpHeaders): PeerAuthResult {
    const result = this.#screen(segment, headers);
    if (!result.ok) this.#rejected[result.reason]++;
    return result;
  }

  #screen(segment: string, headers: IncomingHttpHeaders): PeerAuthResult {
    const parsed = parse(segment, headers);
    if (!('timestamp' in parsed)) return parsed;
    if (this.#key === undefined) return refuse('no-secret');
    if (Math.abs(this.#now() - Number(parsed.timestamp)) > this.#windowMs) return refuse('stale');
    return { ok: true };
  }

  #check(segment: string, headers: IncomingHttpHeaders, body: Uint8Array | undefined, self: string | undefined): PeerAuthResult {
    const parsed = parse(segment, headers);
    if (!('timestamp' in parsed)) return parsed;
    const { timestamp, nonce, target, signature, senderId, sequence } = parsed;
    const key = this.#key;
    if (key === undefined) return refuse('no-secret');
    if (body === undefined) return refuse('unverifiable-body');
    const expected = mac(key, segment, target, timestamp, nonce, body);
    const given = Buffer.from(signature, 'base64url');
    if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) return refuse('bad-signature');
    const now = this.#now();
    if (Math.abs(now - Number(timestamp)) > this.#windowMs) return refuse('stale');
    if (self !== undefined && normalizeTarget(self) !== target && segment !== RaftPaths.join && segment !== RaftPaths.leave) {
      return refuse('wrong-target');
    }
    return this.#remember(senderId, sequence, now);
  }

  /** Records an accepted nonce; refuses one already seen (or too far behind to tell). */
  #remember(senderId: string, sequence: number, now: number): PeerAuthResult {
    let sender = this.#senders.get(senderId);
    if (sender === undefined) {
      if (this.#senders.size >= this.#maxSenders) this.#forgetIdle(now);
      if (this.#senders.size >= this.#maxSenders) return refuse('too-many-senders');
      sender = { highest: sequence, seen: new Uint32Array(SEQUENCE_WINDOW / 32), lastSeenMs: now };
      sender.seen[0] = 1;
      this.#senders.set(senderId, sender);
      return { ok: true };
    }
    if (sequence > sender.highest) {
      shift(sender.seen, sequence - sender.highest);
      sender.highest = sequence;
      sender.seen[0]! |= 1;
    } else {
      const behind = sender.highest - sequence;
      if (behind >= SEQUENCE_WINDOW) return refuse('replay');
      const word = behind >>> 5;
      const bit = 1 << (behind & 31);
      if ((sender.seen[word]! & bit) !== 0) return refuse('replay');
      sender.seen[word]! |= bit;
    }
    sender.lastSeenMs = Math.max(sender.lastSeenMs, now);
    return { ok: true };
  }

  /** Drops senders idle for more than twice the window (plus a second): anything they signed is stale now. */
  #forgetIdle(now: number): void {
    const limit = 2 * this.#windowMs + 1000;
    for (const [id, sender] of this.#senders) if (now - sender.lastSeenMs > limit) this.#senders.delete(id);
  }
}

/** The signature headers of a request, checked for shape. */
interface Signed {
  timestamp: string;
  nonce: string;
  target: string;
  signature: string;
  senderId: string;
  sequence: number;
}

/** Reads and shape-checks the signature headers; a refusal when one is missing or malformed. */
function parse(segment: string, headers: IncomingHttpHeaders): Signed | PeerAuthResult {
  const timestamp = header(headers, PeerAuthHeaders.timestamp);
  const nonce = header(headers, PeerAuthHeaders.nonce);
  const target = header(headers, PeerAuthHeaders.target);
  const signature = header(headers, PeerAuthHeaders.signature);
  if (timestamp === undefined || nonce === undefined || target === undefined || signature === undefined) return refuse('missing');
  const dot = nonce.indexOf('.');
  const senderId = nonce.slice(0, dot);
  const sequenceText = nonce.slice(dot + 1);
  if (
    !RPCS.has(segment) ||
    !TIMESTAMP.test(timestamp) ||
    dot === -1 ||
    !SENDER_ID.test(senderId) ||
    !SEQUENCE.test(sequenceText) ||
    target.length === 0 ||
    target.length > 2048 ||
    !SIGNATURE.test(signature)
  ) {
    return refuse('malformed');
  }
  return { timestamp, nonce, target, signature, senderId, sequence: Number(sequenceText) };
}

function refuse(reason: PeerAuthRejection): PeerAuthResult {
  return { ok: false, reason, message: PeerAuthRejections[reason] };
}

/** HMAC-SHA256 of the canonical string. */
function mac(key: Buffer, segment: string, target: string, timestamp: string, nonce: string, body: Uint8Array): Buffer {
  const digest = createHash('sha256').update(body).digest('hex');
  return createHmac('sha256', key).update([SCHEME, 'POST', segment, target, timestamp, nonce, digest].join('\n'), 'utf8').digest();
}

/** Shifts the seen-bitmap by `by` positions toward older sequences (bit i moves to bit i + by). */
function shift(seen: Uint32Array, by: number): void {
  if (by >= SEQUENCE_WINDOW) {
    seen.fill(0);
    return;
  }
  const words = by >>> 5;
  const bits = by & 31;
  for (let i = seen.length - 1; i >= 0; i--) {
    const from = i - words;
    const low = from >= 0 ? seen[from]! : 0;
    const lower = from - 1 >= 0 ? seen[from - 1]! : 0;
    seen[i] = bits === 0 ? low : ((low << bits) | (lower >>> (32 - bits))) >>> 0;
  }
}
