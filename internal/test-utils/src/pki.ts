import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate and key issued by a {@link TestPki}, as files. */
export interface IssuedFiles {
  cert: string;
  key: string;
  /** The certificate's serial number (upper-case hex, as `X509Certificate.serialNumber`). */
  serial: string;
}

/** A throwaway CA in a temp dir (tests only: keys are made at run time, never committed). */
export interface TestPki {
  /** Path of the CA's certificate. */
  ca: string;
  /** Issues a certificate for 127.0.0.1 and localhost (server and client use) into the dir. */
  issue(name: string, days?: number): IssuedFiles;
  /** Issues such a certificate valid from `notBefore` to `notAfter` (both may be in the past: an expired certificate). */
  issueBetween(name: string, notBefore: Date, notAfter: Date): IssuedFiles;
}

/** `date` as openssl's `YYYYMMDDHHMMSSZ` (UTC). */
function opensslTime(date: Date): string {
  return `${date.toISOString().slice(0, 19).replace(/[-:T]/g, '')}Z`;
}

/** Makes a CA called `name` in `dir` with the `openssl` command line (EC P-256 keys). */
export function makeTestPki(dir: string, name: string): TestPki {
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`, '-days', '2', '-subj', `/CN=${name} CA`]);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  return {
    ca: join(dir, `${name}-ca.crt`),
    issue(cn, days = 2) {
      const serial = `1${randomBytes(8).toString('hex').toUpperCase().slice(1)}`;
      run(['req', ...ec, '-keyout', `${cn}.key`, '-out', `${cn}.csr`, '-subj', `/CN=${cn}`]);
      run(['x509', '-req', '-in', `${cn}.csr`, '-CA', `${name}-ca.crt`, '-CAkey', `${name}-ca.key`, '-set_serial', `0x${serial}`, '-days', String(days), '-extfile', 'ext.cnf', '-out', `${cn}.crt`]);
      return { cert: join(dir, `${cn}.crt`), key: join(dir, `${cn}.key`), serial };
    },
    issueBetween(cn, notBefore, notAfter) {
      // `x509 -req` takes only -days from now; `ca` takes any validity window.
      const serial = `1${randomBytes(8).toString('hex').toUpperCase().slice(1)}`;
      writeFileSync(join(dir, `${name}-ca.serial`), `${serial}\n`);
      writeFileSync(join(dir, `${name}-ca.index`), '', { flag: 'a' });
      writeFileSync(
        join(dir, `${name}-ca.cnf`),
        [
          '[ca]', 'default_ca = test', '[test]', `database = ${name}-ca.index`, 'unique_subject = no', `serial = ${name}-ca.serial`,
          'new_certs_dir = .', 'default_md = sha256', 'policy = any', '[any]', 'commonName = supplied', '',
        ].join('\n'),
      );
      run(['req', ...ec, '-keyout', `${cn}.key`, '-out', `${cn}.csr`, '-subj', `/CN=${cn}`]);
      run(['ca', '-batch', '-notext', '-config', `${name}-ca.cnf`, '-cert', `${name}-ca.crt`, '-keyfile', `${name}-ca.key`, '-in', `${cn}.csr`, '-out', `${cn}.crt`,
        '-startdate', opensslTime(notBefore), '-enddate', opensslTime(notAfter), '-extfile', 'ext.cnf']);
      return { cert: join(dir, `${cn}.crt`), key: join(dir, `${cn}.key`), serial };
    },
  };
}
