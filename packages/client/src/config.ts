import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { ClientError } from './errors.js';

/** What the client persists: the broker URLs of the cluster, as the original's `{"urls":[...]}`. */
export interface ClientConfig {
  /** Base URLs of the brokers (`http://host:port`), at least one. */
  urls: URL[];
}

const httpURL = z.string().refine((text) => parseBrokerURL(text) !== undefined, { message: 'not an absolute http(s) URL' });
const configSchema = z.object({ urls: z.array(httpURL).min(1, { message: 'must list at least one broker URL' }) });

/**
 * Parses a broker base URL: an absolute `http:` or `https:` URL. Path, query
 * and fragment are dropped (requests use the protocol's own paths). Returns
 * `undefined` for anything else.
 */
export function parseBrokerURL(value: string | URL): URL | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.host === '') return undefined;
  return new URL(url.origin);
}

/**
 * Reads and validates a config file. Every failure is a {@link ClientError}
 * naming the file and the problem: `CONFIG_NOT_FOUND` (no such file),
 * `CONFIG_UNREADABLE`, `CONFIG_NOT_JSON`, `CONFIG_INVALID` (wrong shape; the
 * message names the offending field).
 */
export async function loadConfig(path: string): Promise<ClientConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ClientError('CONFIG_NOT_FOUND', { message: `config file not found: ${path}`, cause: error });
    }
    throw new ClientError('CONFIG_UNREADABLE', { message: `config file unreadable: ${path}: ${String(code ?? error)}`, cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ClientError('CONFIG_NOT_JSON', { message: `config file is not JSON: ${path}: ${(error as Error).message}`, cause: error });
  }
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`)
      .join('; ');
    throw new ClientError('CONFIG_INVALID', {
      message: `config file invalid: ${path}: ${problems} (expected {"urls":["http://host:port", ...]})`,
      cause: parsed.error,
    });
  }
  return { urls: parsed.data.urls.map((text) => parseBrokerURL(text)!) };
}

/** The file's JSON text for `config`: `{"urls":[...]}` and a newline, as the original wrote it. */
export function formatConfig(config: ClientConfig): string {
  return `${JSON.stringify({ urls: config.urls.map((url) => url.origin) })}\n`;
}

/**
 * Writes `config` to `path` atomically: the JSON goes to a temp file beside it
 * (same directory), which is fsynced and renamed over `path`, and then the
 * directory is fsynced. A crash leaves either the old or the new file, never a
 * torn one. Failures are `CONFIG_WRITE_FAILED` (the temp file is removed).
 */
export async function writeConfig(path: string, config: ClientConfig): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const file = await open(temp, 'wx', 0o644);
    try {
      await file.writeFile(formatConfig(config), 'utf8');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw new ClientError('CONFIG_WRITE_FAILED', { message: `config file write failed: ${path}: ${(error as Error).message}`, cause: error });
  }
  // Make the rename itself durable. Not every platform can fsync a directory.
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Best effort.
  }
}
