import { describe, expect, it } from '@jest/globals';
import { resolve } from 'node:path';
import { parseClusterArgs } from './cluster.js';

describe('parseClusterArgs', () => {
  it('defaults to three nodes on 8086.. with data in data/cluster', () => {
    expect(parseClusterArgs([])).toEqual({ dir: resolve('data/cluster'), host: '127.0.0.1', ports: [8086, 8087, 8088], extra: [], readyTimeoutMs: 30_000 });
  });

  it('takes a node count, a base port or a port list, and flags for every node after --', () => {
    expect(parseClusterArgs(['--nodes', '5', '--base-port', '9000', '--dir', '/tmp/c'])).toMatchObject({ dir: '/tmp/c', ports: [9000, 9001, 9002, 9003, 9004] });
    expect(parseClusterArgs(['--nodes', '2', '--ports', '7001,7005', '--', '--sync', 'never'])).toMatchObject({ ports: [7001, 7005], extra: ['--sync', 'never'] });
    expect(parseClusterArgs(['--help'])).toBe('help');
  });

  it('refuses bad counts and ports, naming the flag', () => {
    expect(() => parseClusterArgs(['--nodes', '0'])).toThrow('--nodes: expected an integer in 1..9, got "0"');
    expect(() => parseClusterArgs(['--nodes', '10'])).toThrow('--nodes');
    expect(() => parseClusterArgs(['--ports', '1,2'])).toThrow('--ports: 2 ports for 3 nodes');
    expect(() => parseClusterArgs(['--nodes', '2', '--ports', '1,1'])).toThrow('--ports: a port is listed twice');
    expect(() => parseClusterArgs(['--nodes', '1', '--ports', '70000'])).toThrow('--ports: expected ports in 1..65535, got "70000"');
    expect(() => parseClusterArgs(['--ports', '1,2,3', '--base-port', '5'])).toThrow('give --base-port or --ports, not both');
    expect(() => parseClusterArgs(['--sync', 'never'])).toThrow("Unknown option '--sync'");
  });
});
