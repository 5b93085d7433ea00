import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { ConfigError, type TlsFiles } from './config.js';

/** The flags that name a listener's files, for error messages. */
export interface TlsFlags {
  cert: string;
  key: string;
  ca: string;
}

/** The client listener's flags. */
export const CLIENT_TLS_FLAGS: TlsFlags = { cert: '--tls-cert', key: '--tls-key', ca: '--tls-ca' };

/** The flags of peer traffic's files: `--peer-tls-*` when given, else the client ones (see `ServerConfig.peerTls`). */
export const PEER_TLS_FLAGS: TlsFlags = { cert: '--peer-tls-cert', key: '--peer-tls-key', ca: '--peer-tls-ca' };

/** A listener's certificate, key and CA, read and checked. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** With it, clients must present a certificate it signed. */
  ca: Buffer | undefined;
  /** When the certificate expires, in seconds since the epoch. */
  notAfter: number;
  /** The certificate's serial number (hex), for logs. */
  serial: string;
}

async function readPem(path: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new ConfigError(flag, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/**
 * Reads `files` and checks them: the certificate and the CA parse as PEM
 * X.509 certificates, the key as a PEM private key that belongs to the
 * certificate, and Node accepts them together. Every failure is a
 * {@link ConfigError} naming the flag and the path (exit 64); nothing is
 * used until all of it is good, so a failed reload leaves the current
 * material in place.
 */
export async function readTls(files: TlsFiles, flags: TlsFlags): Promise<TlsMaterial> {
  const [cert, key, ca] = await Promise.all([
    readPem(files.cert, flags.cert),
    readPem(files.key, flags.key),
    files.ca === undefined ? undefined : readPem(files.ca, flags.ca),
  ]);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new ConfigError(flags.cert, `${files.cert} is not a PEM certificate: ${(error as Error).message}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new ConfigError(flags.key, `${files.key} is not a PEM private key: ${(error as Error).message}`);
  }
  if (!x509.checkPrivateKey(privateKey)) throw new ConfigError(flags.key, `${files.key} is not the private key of ${files.cert}`);
  if (ca !== undefined && files.ca !== undefined) {
    try {
      new X509Certificate(ca);
    } catch (error) {
      throw new ConfigError(flags.ca, `${files.ca} is not a PEM certificate: ${(error as Error).message}`);
    }
  }
  const material: TlsMaterial = { cert, key, ca, notAfter: Math.floor(Date.parse(x509.validTo) / 1000), serial: x509.serialNumber };
  try {
    createSecureContext(contextOptions(material));
  } catch (error) {
    throw new ConfigError(flags.cert, `${files.cert}, ${files.key}${files.ca === undefined ? '' : `, ${files.ca}`}: ${(error as Error).message}`);
  }
  return material;
}

/** The certificate, key and CA as `tls` options. */
export function contextOptions(material: TlsMaterial): SecureContextOptions {
  return { cert: material.cert, key: material.key, ...(material.ca === undefined ? {} : { ca: material.ca }) };
}

/** Options of an https server for `material`: with a CA, clients must present a certificate it signed (mutual TLS). */
export function serverTlsOptions(material: TlsMaterial): SecureContextOptions & { requestCert: boolean; rejectUnauthorized: boolean } {
  const mutual = material.ca !== undefined;
  return { ...contextOptions(material), requestCert: mutual, rejectUnauthorized: mutual };
}

/** Prometheus lines of `msg_tls_certificate_expiry_seconds` for each listener that has TLS. */
export function renderTlsExpiry(listeners: Readonly<Record<string, TlsMaterial | undefined>>): string[] {
  const entries = Object.entries(listeners).filter((entry): entry is [string, TlsMaterial] => entry[1] !== undefined);
  if (entries.length === 0) return [];
  return [
    '# HELP msg_tls_certificate_expiry_seconds When the certificate a listener serves expires, in seconds since the epoch.',
    '# TYPE msg_tls_certificate_expiry_seconds gauge',
    ...entries.map(([listener, material]) => `msg_tls_certificate_expiry_seconds{listener="${listener}"} ${material.notAfter}`),
  ];
}

/** Something that serves TLS and can swap its certificate: an https server. */
interface SecureServer {
  setSecureContext(options: SecureContextOptions): void;
}

/** Something that sends to peers over TLS: raft-ts's HttpTransport. */
interface SecureSender {
  setTls(tls: { ca?: Buffer | undefined; cert?: Buffer; key?: Buffer }): void;
}

/** Logs a reload's outcome, and certificates that expire soon. */
interface ReloadLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A served certificate that expires within this many milliseconds is warned about (at startup and on reload). */
export const EXPIRY_WARNING_MS = 7 * 86_400_000;

/**
 * The TLS state of a node: the client listener's material (`config.tls`),
 * that of peer traffic (`config.peerTls`: the peer listener and the raft
 * transport), the servers and the transport that use them, and their
 * reload (SIGHUP).
 */
export class NodeTls {
  readonly #files: { client: TlsFiles | undefined; peer: TlsFiles | undefined };
  #client: TlsMaterial | undefined;
  #peer: TlsMaterial | undefined;
  readonly #servers: { listener: 'client' | 'peer'; server: SecureServer }[] = [];
  #transport: SecureSender | undefined;

  private constructor(files: { client: TlsFiles | undefined; peer: TlsFiles | undefined }, client: TlsMaterial | undefined, peer: TlsMaterial | undefined) {
    this.#files = files;
    this.#client = client;
    this.#peer = peer;
  }

  /** Reads and checks the files of `config` (a {@link ConfigError} naming flag and path when one is bad). */
  static async open(config: { tls?: TlsFiles | undefined; peerTls?: TlsFiles | undefined }): Promise<NodeTls> {
    const files = { client: config.tls, peer: config.peerTls };
    const [client, peer] = await NodeTls.#read(files);
    return new NodeTls(files, client, peer);
  }

  static async #read(files: { client: TlsFiles | undefined; peer: TlsFiles | undefined }): Promise<[TlsMaterial | undefined, TlsMaterial | undefined]> {
    const client = files.client === undefined ? undefined : await readTls(files.client, CLIENT_TLS_FLAGS);
    const peer = files.peer === undefined ? undefined : files.peer === files.client ? client : await readTls(files.peer, PEER_TLS_FLAGS);
    return [client, peer];
  }

  /** The material of `listener`, `undefined` when it is plain HTTP. */
  material(listener: 'client' | 'peer'): TlsMaterial | undefined {
    return listener === 'client' ? this.#client : this.#peer;
  }

  /** `https` when `listener` has TLS, else `http`. */
  scheme(listener: 'client' | 'peer'): 'http' | 'https' {
    return this.material(listener) === undefined ? 'http' : 'https';
  }

  /** Server options (certificate, key; with a CA, required client certificates) of `listener`, `{}` without TLS. */
  serverOptions(listener: 'client' | 'peer'): ReturnType<typeof serverTlsOptions> | Record<string, never> {
    const material = this.material(listener);
    return material === undefined ? {} : serverTlsOptions(material);
  }

  /** Remembers `server` (an https server of `listener`) for {@link NodeTls.reload}. */
  track(listener: 'client' | 'peer', server: SecureServer): void {
    this.#servers.push({ listener, server });
  }

  /** What the raft transport presents to peers and verifies them with: the peer material; `undefined` without peer TLS. */
  transportTls(): { ca: Buffer | undefined; cert: Buffer; key: Buffer } | undefined {
    const peer = this.#peer;
    return peer === undefined ? undefined : { ca: peer.ca, cert: peer.cert, key: peer.key };
  }

  /** Remembers the raft transport for {@link NodeTls.reload}. */
  trackTransport(transport: SecureSender): void {
    this.#transport = transport;
  }

  /**
   * Reads the files again and, when every one is good, serves the new
   * certificates on the tracked servers (new connections; open ones keep
   * theirs) and gives them to the transport. A bad file changes nothing:
   * it is logged as an error and `false` is returned.
   */
  async reload(logger: ReloadLogger): Promise<boolean> {
    if (this.#files.client === undefined && this.#files.peer === undefined) return true;
    let client: TlsMaterial | undefined;
    let peer: TlsMaterial | undefined;
    try {
      [client, peer] = await NodeTls.#read(this.#files);
      for (const { listener, server } of this.#servers) {
        const material = listener === 'client' ? client : peer;
        if (material !== undefined) server.setSecureContext(serverTlsOptions(material));
      }
      if (peer !== undefined) this.#transport?.setTls({ ca: peer.ca, cert: peer.cert, key: peer.key });
    } catch (error) {
      logger.error('TLS reload failed; keeping the current certificates', { err: error });
      return false;
    }
    this.#client = client;
    this.#peer = peer;
    logger.info('TLS certificates reloaded', {
      ...(client === undefined ? {} : { client: { serial: client.serial, notAfter: new Date(client.notAfter * 1000).toISOString() } }),
      ...(peer === undefined ? {} : { peer: { serial: peer.serial, notAfter: new Date(peer.notAfter * 1000).toISOString() } }),
    });
    this.warnExpiring(logger);
    return true;
  }

  /**
   * Logs a warning for each certificate in use that has expired (`TLS
   * certificate expired`) or expires within {@link EXPIRY_WARNING_MS}
   * (`TLS certificate expires soon`), with the listener, the flag, the
   * serial and the expiry. Peer traffic that uses the client listener's
   * files is warned about once, as the client listener.
   */
  warnExpiring(logger: Pick<ReloadLogger, 'warn'>, now: number = Date.now()): void {
    const listeners: ['client' | 'peer', TlsMaterial | undefined, TlsFlags][] = [
      ['client', this.#client, CLIENT_TLS_FLAGS],
      ['peer', this.#peer === this.#client ? undefined : this.#peer, PEER_TLS_FLAGS],
    ];
    for (const [listener, material, flags] of listeners) {
      if (material === undefined) continue;
      const left = material.notAfter * 1000 - now;
      if (left >= EXPIRY_WARNING_MS) continue;
      logger.warn(left <= 0 ? 'TLS certificate expired' : 'TLS certificate expires soon', {
        listener,
        flag: flags.cert,
        serial: material.serial,
        notAfter: new Date(material.notAfter * 1000).toISOString(),
        hint: 'replace the certificate and send SIGHUP',
      });
    }
  }

  /** `msg_tls_certificate_expiry_seconds{listener="client"|"peer"}` lines for `/metrics`. */
  metricsLines(): string[] {
    return renderTlsExpiry({ client: this.#client, peer: this.#peer });
  }
}
