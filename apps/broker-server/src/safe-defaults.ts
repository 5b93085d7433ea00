import { isIP } from 'node:net';

/**
 * True when `host` (a listen address) only accepts connections from this
 * machine: `localhost`, an IPv4 address in 127.0.0.0/8, `::1`, or an
 * IPv4-mapped loopback address. Wildcards (`0.0.0.0`, `::`), other addresses
 * and other host names are not.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (bare.toLowerCase() === 'localhost') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  const v4 = mapped ? mapped[1]! : bare;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return isIP(bare) === 6 && /^(?:0{0,4}:){2,7}0{0,3}1$|^::1$/.test(bare);
}

/** What decides whether a listener may be reachable from the network. */
export interface Exposure {
  /** The listen host. */
  host: string;
  /** The listener serves TLS. */
  tls: boolean;
  /** Clients must authenticate (an auth file); irrelevant to the peer listener. */
  auth: boolean;
  /** `--insecure` was given. */
  insecure: boolean;
}

/**
 * The safe-defaults rule (like Redis's protected mode): the reason a
 * listener must not start, or `undefined` when it may. A client listener on
 * a non-loopback address needs TLS or client authentication; a peer
 * listener there needs TLS (the auth file does not cover raft traffic; its
 * HMAC is always on but does not hide the messages it carries). `--insecure`
 * lifts the rule.
 */
export function exposureProblem(listener: 'client' | 'peer', exposure: Exposure): string | undefined {
  if (exposure.insecure || isLoopbackHost(exposure.host)) return undefined;
  if (listener === 'client') {
    if (exposure.tls || exposure.auth) return undefined;
    return `${exposure.host} is not a loopback address and the client API has neither TLS nor client authentication: anyone who can reach it may publish and read every topic; configure --tls-cert/--tls-key (TLS), --auth-file (client tokens), or pass --insecure to serve it open anyway`;
  }
  if (exposure.tls) return undefined;
  return `${exposure.host} is not a loopback address and raft traffic would travel unencrypted: configure --peer-tls-cert/--peer-tls-key (or --tls-cert/--tls-key, which the peer listener then uses too), or pass --insecure`;
}
