import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Client, parseBrokerURL, type ClientOptions, type ClientTls } from '@msg/client';
import { Paths } from '@msg/wire';
import { CliError } from './errors.js';
import type { Connection } from './args.js';

/** Reads the PEM files of `connection`; a missing or unreadable file is `NO_INPUT` (exit 66) naming the flag and the path. */
export async function loadTls(connection: Connection): Promise<ClientTls | undefined> {
  const files = connection.tlsFiles;
  if (files.ca === undefined && files.cert === undefined) return undefined;
  const read = async (flag: string, path: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (error) {
      throw new CliError('NO_INPUT', `--${flag}: ${(error as Error).message}`, { cause: error });
    }
  };
  const tls: ClientTls = {};
  if (files.ca !== undefined) tls.ca = await read('ca', files.ca);
  if (files.cert !== undefined && files.key !== undefined) {
    tls.cert = await read('cert', files.cert);
    tls.key = await read('key', files.key);
  }
  return tls;
}

/** The cluster as the first of the given brokers that answers `GET /status` shows it: its members and its leader. */
export interface Membership {
  /** Every member's URL (the given ones first). */
  urls: URL[];
  /** The leader it names, if any. */
  leader?: URL;
}

/**
 * Learns the cluster's members from the `/status` of the first of
 * `connection.urls` that answers it (an identity with admin rights is needed
 * on brokers with `--auth-file`). `@msg/client` sends requests and follows
 * redirects only to members it was given, so a command given one follower's
 * URL needs the others (the leader) too. When no broker answers, the given
 * URLs alone (the client then reports what fails).
 */
export async function discoverMembers(connection: Connection, reader?: AdminReader): Promise<Membership> {
  const admin = reader ?? (await adminReader(connection, 3000));
  for (const url of connection.urls) {
    const answer = await admin.get(url, Paths.status).catch(() => undefined);
    const body = answer?.status === 200 ? (answer.body as { members?: unknown; urls?: unknown; leaderURL?: unknown } | undefined) : undefined;
    if (body === undefined) continue;
    const listed = [body.members, body.urls].find((v): v is unknown[] => Array.isArray(v)) ?? [];
    const urls = new Map(connection.urls.map((u) => [u.origin, u]));
    for (const text of listed) {
      const member = typeof text === 'string' ? parseBrokerURL(text) : undefined;
      if (member !== undefined && !urls.has(member.origin)) urls.set(member.origin, member);
    }
    const leader = typeof body.leaderURL === 'string' ? parseBrokerURL(body.leaderURL) : undefined;
    return leader === undefined || !urls.has(leader.origin) ? { urls: [...urls.values()] } : { urls: [...urls.values()], leader };
  }
  return { urls: connection.urls };
}

/**
 * An opened `@msg/client` {@link Client} of `connection` (its token and TLS,
 * and the members {@link discoverMembers} learns from its URLs, the leader
 * first), without a config file and without the background ping (a command
 * is short-lived). Close it when done.
 */
export async function openClient(connection: Connection, options: Partial<ClientOptions> = {}): Promise<Client> {
  const tls = await loadTls(connection);
  const members = await discoverMembers(connection);
  const client = new Client({
    urls: members.urls,
    pingIntervalMs: 0,
    ...(connection.token === undefined ? {} : { token: connection.token }),
    ...(tls === undefined ? {} : { tls }),
    ...options,
  });
  if (members.leader !== undefined) client.setURL(members.leader);
  await client.open();
  return client;
}

/** A broker's answer to an admin GET: its status code and the parsed JSON body. */
export interface JsonAnswer {
  /** HTTP status code. */
  status: number;
  /** The body parsed as JSON (`undefined` when it is not JSON). */
  body: unknown;
}

/** Reads broker admin routes (`/status`, `/ready`) with the connection's token and TLS. */
export interface AdminReader {
  /** `GET <url><path>`; rejects on a connection error or after the timeout (`UNAVAILABLE`). */
  get(url: URL, path: string): Promise<JsonAnswer>;
}

/**
 * An {@link AdminReader} for `connection`. `@msg/client` has no call for the
 * admin routes, so this is a plain GET with the same credentials (the bearer
 * token, the CA and client certificate) and a deadline of `timeoutMs`
 * (default 5000) per request.
 */
export async function adminReader(connection: Connection, timeoutMs = 5000): Promise<AdminReader> {
  const tls = await loadTls(connection);
  return {
    get(url, path) {
      const https = url.protocol === 'https:';
      const send = https ? httpsRequest : httpRequest;
      return new Promise<JsonAnswer>((resolve, reject) => {
        const req = send(
          new URL(path, url),
          {
            method: 'GET',
            headers: { accept: 'application/json', ...(connection.token === undefined ? {} : { authorization: `Bearer ${connection.token}` }) },
            timeout: timeoutMs,
            ...(https && tls !== undefined
              ? { ca: tls.ca as string | Buffer | (string | Buffer)[] | undefined, cert: tls.cert, key: tls.key }
              : {}),
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) => chunks.push(chunk));
            res.on('error', reject);
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let body: unknown;
              try {
                body = JSON.parse(text);
              } catch {
                body = undefined;
              }
              resolve({ status: res.statusCode ?? 0, body });
            });
          },
        );
        req.on('timeout', () => req.destroy(new CliError('UNAVAILABLE', `GET ${url.origin}${path}: no answer within ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end();
      });
    },
  };
}

/** The admin paths `msg` reads. */
export const AdminPaths = { status: Paths.status, ready: Paths.ready } as const;
