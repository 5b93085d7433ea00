import { describe, expect, it } from '@jest/globals';
import { Client, type Message } from '@msg/client';
import { makeTempDir, waitFor, makeTestPki, type TestPki } from '@msg/test-utils';
import { createHash, randomBytes } from 'node:crypto';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { BrokerExitedError, runServerCommand, startBroker } from '../src/broker-process.js';
import { FAST_RAFT_ARGS, readJoinToken, startCluster, status, waitForLeader, waitForLog } from '../src/cluster.js';
import { request, type RequestTls } from '../src/http-request.js';

const TOPIC = 7n;

/** The serial number of the certificate the server at `url` presents. */
function servedSerial(url: string, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${url}/health`, { ca, agent: false, signal: AbortSignal.timeout(5000) }, (res) => {
      resolve((res.socket as TLSSocket).getPeerCertificate().serialNumber);
      res.resume();
    });
    req.once('error', reject);
    req.end();
  });
}

async function pki(name: string): Promise<TestPki> {
  return makeTestPki(await makeTempDir(`msg-it-pki-${name}-`), name);
}

describe('TLS', () => {
  it('@msg/client publishes and streams over https with the CA; under --tls-ca a client without a certificate is refused', async () => {
    const cluster = await pki('cluster');
    const node = cluster.issue('node');
    const broker = await startBroker({
      dataDir: await makeTempDir('msg-it-tls-'),
      args: ['--tls-cert', node.cert, '--tls-key', node.key, '--tls-ca', cluster.ca, ...FAST_RAFT_ARGS],
    });
    expect(broker.url).toMatch(/^https:/);
    const ca = await readFile(cluster.ca);
    const me = cluster.issue('client');
    const client = new Client({ urls: [broker.url], pingIntervalMs: 0, tls: { ca, cert: await readFile(me.cert), key: await readFile(me.key) } });
    await client.open();
    try {
      const indexes: bigint[] = [];
      for (let i = 0; i < 5; i++) indexes.push(await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(`m-${i}`) }));
      const conn = client.conn(TOPIC);
      conn.open(0n);
      const streamed: Message[] = [];
      for await (const message of conn) {
        if (message.type === 1) streamed.push(message);
        if (message.index >= indexes.at(-1)!) break;
      }
      await conn.close();
      expect(streamed.map((m) => Buffer.from(m.data).toString())).toEqual(['m-0', 'm-1', 'm-2', 'm-3', 'm-4']);
    } finally {
      await client.close();
    }
    const anonymous = new Client({ urls: [broker.url], pingIntervalMs: 0, retries: 0, tls: { ca } });
    await anonymous.open().catch(() => undefined);
    try {
      await expect(anonymous.publish({ type: 1, topicID: TOPIC, data: Buffer.from('x') })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      await anonymous.close();
    }
    await expect(request(`${broker.url}/status`, { tls: { ca } })).rejects.toThrow();
  });

  it('runs a 3-node cluster over mutual-TLS peer links; a node with a certificate of another CA cannot join', async () => {
    const cluster = await pki('cluster');
    const other = await pki('other');
    const server = cluster.issue('server');
    const tls: RequestTls = { ca: await readFile(cluster.ca) };
    const peerArgs = (cert: { cert: string; key: string }): string[] => [
      '--peer-listen', '127.0.0.1:0', '--peer-tls-cert', cert.cert, '--peer-tls-key', cert.key, '--peer-tls-ca', cluster.ca,
    ];
    const nodes = await startCluster(3, {
      tls,
      args: ['--tls-cert', server.cert, '--tls-key', server.key],
      nodeArgs: (i) => peerArgs(cluster.issue(`peer-${i}`)),
    });
    for (const node of nodes) expect(node.url).toMatch(/^https:/);
    const leader = await waitForLeader(nodes, undefined, tls);
    const client = new Client({ urls: [leader.url], pingIntervalMs: 0, tls });
    await client.open();
    try {
      const index = await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from('replicated') });
      // Every node applies it: replication went over the mutual-TLS peer links.
      await waitFor(
        async () => {
          const metrics = await Promise.all(nodes.map(async (n) => (await request(`${n.url}/metrics`, { tls })).body.toString()));
          return metrics.every((text) => Number(/^msg_raft_applied_index (\d+)$/m.exec(text)?.[1]) >= Number(index));
        },
        { timeoutMs: 10_000, intervalMs: 50, message: 'every node applied the publish' },
      );
      const metrics = (await request(`${leader.url}/metrics`, { tls })).body.toString();
      expect(metrics).toMatch(/^msg_tls_certificate_expiry_seconds\{listener="client"\} \d+$/m);
      expect(metrics).toMatch(/^msg_tls_certificate_expiry_seconds\{listener="peer"\} \d+$/m);
    } finally {
      await client.close();
    }

    // The stranger has the join token and trusts the cluster's CA, but its own certificate is signed by another CA.
    const error = await startBroker({
      dataDir: await makeTempDir('msg-it-stranger-'),
      join: [nodes[0]!.url],
      joinToken: await readJoinToken(nodes[0]!.dataDir),
      args: [...FAST_RAFT_ARGS, '--tls-cert', server.cert, '--tls-key', server.key, ...peerArgs(other.issue('stranger'))],
      timeoutMs: 60_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BrokerExitedError);
    expect((error as BrokerExitedError).status.code).not.toBe(0);
    // Refused at the TLS layer of the peer listener (a TLS 1.3 server ends the connection after the handshake).
    const failures = (error as BrokerExitedError).logs.filter((l) => l.msg === 'join failed');
    expect(failures.length).toBeGreaterThan(0);
    for (const failure of failures) expect(JSON.stringify(failure.err)).toMatch(/socket hang up|ECONNRESET|certificate/);
    expect((await status(leader.url, tls)).urls.sort()).toEqual(nodes.map((n) => n.url).sort());

    // An operator removes a node over the mutual-TLS peer links: leave with the CA and a certificate of the cluster's.
    const raft = JSON.parse((await request(`${leader.url}/status`, { tls })).body.toString()) as { config: { voters: string[] }; replication: { followers: { url: string }[] } };
    const leaving = raft.replication.followers[0]!.url;
    const via = raft.config.voters.find((v) => v !== leaving)!;
    expect(leaving).toMatch(/^https:/);
    const operator = cluster.issue('operator');
    const token = await readJoinToken(nodes[0]!.dataDir);
    const base = ['leave', '--member', leaving, '--cluster', via, '--join-token', token];
    const withoutCa = await runServerCommand([...base, '--timeout-ms', '1000']);
    expect(withoutCa.code).toBe(69); // the peer listener's certificate is not trusted without --ca: unreachable
    const removed = await runServerCommand([...base, '--timeout-ms', '20000', '--ca', cluster.ca, '--cert', operator.cert, '--key', operator.key], 60_000);
    expect({ code: removed.code, stderr: removed.stderr }).toEqual({ code: 0, stderr: '' });
    expect((JSON.parse(removed.stdout) as { removed: string }).removed).toBe(leaving);
    await waitFor(async () => (await status(leader.url, tls)).urls.length === 2, { timeoutMs: 20_000, message: 'two members left' });
  }, 180_000);

  it('a secure 3-node cluster: mutual-TLS peers, HTTPS and an auth file; a client with a token publishes and consumes, a wrong token is refused', async () => {
    const cluster = await pki('secure');
    const server = cluster.issue('server');
    const ca = await readFile(cluster.ca);
    const token = randomBytes(32).toString('base64url');
    const authFile = `${await makeTempDir('msg-it-auth-')}/auth.json`;
    const identity = { name: 'svc', tokenSha256: createHash('sha256').update(token).digest('hex'), permissions: { publish: [String(TOPIC)], subscribe: [String(TOPIC)] } };
    await writeFile(authFile, JSON.stringify({ identities: [identity] }));
    const args = (peer: { cert: string; key: string }): string[] => [
      ...FAST_RAFT_ARGS, '--tls-cert', server.cert, '--tls-key', server.key, '--auth-file', authFile,
      '--peer-listen', '127.0.0.1:0', '--peer-tls-cert', peer.cert, '--peer-tls-key', peer.key, '--peer-tls-ca', cluster.ca,
    ];
    const ready = (url: string): Promise<unknown> =>
      waitFor(async () => (await request(`${url}/ready`, { tls: { ca } }).catch(() => ({ status: 0 }))).status === 200, { timeoutMs: 20_000, intervalMs: 50, message: `${url} ready` });
    const first = await startBroker({ dataDir: await makeTempDir('msg-it-s1-'), args: args(cluster.issue('peer-1')) });
    await ready(first.url);
    const joinToken = await readJoinToken(first.dataDir);
    const nodes = [first];
    for (const i of [2, 3]) nodes.push(await startBroker({ dataDir: await makeTempDir(`msg-it-s${i}-`), join: [first.url], joinToken, args: args(cluster.issue(`peer-${i}`)) }));
    for (const node of nodes) await ready(node.url);

    const client = new Client({ urls: nodes.map((n) => n.url), pingIntervalMs: 0, tls: { ca }, token: () => token });
    await client.open();
    try {
      const indexes: bigint[] = [];
      for (let i = 0; i < 5; i++) indexes.push(await client.publish({ type: 1, topicID: TOPIC, data: Buffer.from(`secure-${i}`) }));
      const conn = client.conn(TOPIC);
      conn.open(0n);
      const streamed: string[] = [];
      for await (const message of conn) {
        if (message.type === 1) streamed.push(Buffer.from(message.data).toString());
        if (message.index >= indexes.at(-1)!) break;
      }
      await conn.close();
      expect(streamed).toEqual(['secure-0', 'secure-1', 'secure-2', 'secure-3', 'secure-4']);
      await expect(client.publish({ type: 1, topicID: TOPIC + 1n, data: Buffer.from('elsewhere') })).rejects.toMatchObject({ code: 'FORBIDDEN' });
    } finally {
      await client.close();
    }
    const wrong = new Client({ urls: nodes.map((n) => n.url), pingIntervalMs: 0, retries: 0, tls: { ca }, token: 'not-the-token' });
    await wrong.open().catch(() => undefined);
    try {
      await expect(wrong.publish({ type: 1, topicID: TOPIC, data: Buffer.from('x') })).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    } finally {
      await wrong.close();
    }
  }, 120_000);

  it('SIGHUP swaps the served certificate without a restart', async () => {
    const cluster = await pki('cluster');
    const dir = await makeTempDir('msg-it-rotate-');
    const first = cluster.issue('first');
    const second = cluster.issue('second');
    await copyFile(first.cert, `${dir}/live.crt`);
    await copyFile(first.key, `${dir}/live.key`);
    const broker = await startBroker({ dataDir: `${dir}/data`, args: ['--tls-cert', `${dir}/live.crt`, '--tls-key', `${dir}/live.key`] });
    const ca = await readFile(cluster.ca);
    expect(await servedSerial(broker.url, ca)).toBe(first.serial);
    await copyFile(second.cert, `${dir}/live.crt`);
    await copyFile(second.key, `${dir}/live.key`);
    process.kill(broker.pid, 'SIGHUP');
    await waitForLog(broker, (line) => line.msg === 'TLS certificates reloaded', 'the reload');
    expect(await servedSerial(broker.url, ca)).toBe(second.serial);
    expect(broker.alive).toBe(true);
  });
});

describe('safe defaults', () => {
  it('refuses a non-loopback bind without TLS or an auth file (64, naming what to configure); --insecure starts it', async () => {
    const dataDir = await makeTempDir('msg-it-open-');
    const args = ['--data-dir', dataDir, '--listen', '0.0.0.0:0', '--advertise-url', 'http://127.0.0.1:1'];
    const refused = await runServerCommand(args);
    expect(refused.code).toBe(64);
    expect(refused.stderr).toMatch(/--tls-cert\/--tls-key.*--auth-file.*--insecure/);

    const broker = await startBroker({ dataDir, args: [...args.slice(2), '--insecure'] });
    const listen = broker.logs.find((l) => l.msg === 'listening')!.listen as string;
    const port = new URL(listen).port;
    expect((await request(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });
});
