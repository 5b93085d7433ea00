import { readFile } from 'node:fs/promises';
import { TopicSet, type Identity } from '@msg/http';
import { z } from 'zod';

/** An auth file that cannot be read or is not valid: the message names the file and the field (`identities[0].tokenSha256`). */
export class AuthFileError extends Error {
  override readonly name = 'AuthFileError';
  /** Exit 64 at startup, as any bad setting. */
  readonly code = 'INVALID_CONFIG';
  /** The file. */
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.path = path;
  }
}

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;

/** One topic id in decimal, or `undefined` when it is not a u64. */
function u64(text: string): bigint | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const value = BigInt(text);
  return value <= U64_MAX ? value : undefined;
}

/** One item of a topic list: an id (number or decimal string), an inclusive range `"10-20"`, or `"*"`. */
const topicItem = z.union([z.number(), z.string()]).transform((item, ctx): 'all' | readonly [bigint, bigint] => {
  if (typeof item === 'number') {
    if (Number.isSafeInteger(item) && item >= 0) return [BigInt(item), BigInt(item)];
    ctx.addIssue({ code: 'custom', message: `expected a topic id (an integer >= 0; larger than 2^53: a decimal string), got ${item}` });
    return z.NEVER;
  }
  const text = item.trim();
  if (text === '*') return 'all';
  const dash = text.indexOf('-');
  const first = u64(dash < 0 ? text : text.slice(0, dash).trim());
  const last = dash < 0 ? first : u64(text.slice(dash + 1).trim());
  if (first === undefined || last === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a topic id, a range "first-last" of u64 decimals, or "*", got ${JSON.stringify(item)}` });
    return z.NEVER;
  }
  if (last < first) {
    ctx.addIssue({ code: 'custom', message: `range ${JSON.stringify(item)} ends before it starts` });
    return z.NEVER;
  }
  return [first, last];
});

const topicSet = z
  .array(topicItem)
  .default([])
  .transform((items) => (items.includes('all') ? TopicSet.ALL : TopicSet.of(items.filter((i) => i !== 'all'))));

const identity = z
  .object({
    name: z.string().trim().min(1).max(200),
    tokenSha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, { message: 'expected the SHA-256 of the token: 64 hex digits (the token itself is never stored)' })
      .transform((hex) => hex.toLowerCase())
      .optional(),
    certSubject: z.string().trim().min(1).optional(),
    permissions: z
      .object({ publish: topicSet, subscribe: topicSet, admin: z.boolean().default(false) })
      .strict(),
  })
  .strict()
  .refine((i) => i.tokenSha256 !== undefined || i.certSubject !== undefined, { message: 'needs tokenSha256 or certSubject (a credential)' });

const Schema = z.object({ identities: z.array(identity) }).strict();

/** `['identities', 0, 'name']` as `identities[0].name`. */
function fieldOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out === '' ? '' : '.'}${String(part)}`;
  return out === '' ? '(root)' : out;
}

/**
 * Validates the JSON of an auth file:
 * `{"identities":[{"name","tokenSha256"?,"certSubject"?,"permissions":{"publish","subscribe","admin"}}]}`
 * (topic lists of ids, ranges `"10-20"` and `"*"`). Names and token hashes
 * must be unique.
 * @throws AuthFileError naming `path` and the first bad field.
 */
export function parseAuthFile(json: unknown, path: string): Identity[] {
  const result = Schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new AuthFileError(path, `${fieldOf(issue.path)}: ${issue.message}`, { cause: result.error });
  }
  const names = new Set<string>();
  const hashes = new Set<string>();
  result.data.identities.forEach((entry, i) => {
    if (names.has(entry.name)) throw new AuthFileError(path, `identities[${i}].name: duplicate name ${JSON.stringify(entry.name)}`);
    names.add(entry.name);
    if (entry.tokenSha256 !== undefined) {
      if (hashes.has(entry.tokenSha256)) throw new AuthFileError(path, `identities[${i}].tokenSha256: the same token as an identity before it`);
      hashes.add(entry.tokenSha256);
    }
  });
  return result.data.identities;
}

/**
 * Reads and validates an auth file (see {@link parseAuthFile}).
 * @throws AuthFileError naming the file: unreadable, not JSON, or invalid (and the field).
 */
export async function loadAuthFile(path: string): Promise<Identity[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new AuthFileError(path, `cannot read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new AuthFileError(path, `not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  return parseAuthFile(json, path);
}
