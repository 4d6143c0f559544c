// `ugate identity init|show` on the binary: what init writes is accepted by
// openssl (chain verifies, URI SAN shown), the node id matches one computed
// here with node:crypto from the certificate, existing files are kept, and
// show refuses (exit 1, naming the file) expired, not-yet-valid, untrusted,
// mismatched and malformed input. Certificates made by openssl check the
// other direction: RSA roots (PKCS#1 v1.5 and PSS signatures) verify.

import { spawnSync } from 'node:child_process'
import { X509Certificate, createHash } from 'node:crypto'
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { rng } from '../lib/rng.js'
import { runUgate, SANITIZER_RE } from '../lib/ugate.js'
import type { ExitResult } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

const FILES = ['root-cert.pem', 'cert-chain.pem', 'key.pem', 'ca-key.pem']
const SPIFFE = 'spiffe://mesh.test/ns/home/sa/router1'

function openssl(t: Test, args: string[], input?: string): string {
  const r = spawnSync('openssl', args, { encoding: 'utf8', input })
  t.equal(r.status, 0, `openssl ${args.slice(0, 2).join(' ')}`, { stderr: r.stderr })
  return r.stdout
}

function clean(t: Test, r: ExitResult): void {
  t.same(
    r.stderr.filter((l) => SANITIZER_RE.test(l)),
    [],
    'no sanitizer reports',
  )
}

function init(t: Test, dir: string, ...more: string[]): ExitResult {
  const r = runUgate([
    'identity',
    'init',
    '--dir',
    dir,
    '--trust-domain',
    'mesh.test',
    '--namespace',
    'home',
    '--sa',
    'router1',
    ...more,
  ])
  clean(t, r)
  return r
}

function show(t: Test, dir: string): ExitResult {
  const r = runUgate(['identity', 'show', '--dir', dir])
  clean(t, r)
  return r
}

/** Exit 1 with one "ugate: ..." line matching re. */
function refused(t: Test, r: ExitResult, re: RegExp): void {
  t.equal(r.code, 1, 'exit status 1', { stderr: r.stderr })
  t.match(r.stderr.join('\n'), re)
}

/** The node id computed here: base32 (RFC 4648, no padding) of SHA-256 of the uncompressed point. */
function referenceNodeId(certPem: string): string {
  const jwk = new X509Certificate(certPem).publicKey.export({ format: 'jwk' })
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])
  const bits = Array.from(createHash('sha256').update(point).digest(), (b) => b.toString(2).padStart(8, '0')).join('')
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  return bits.padEnd(Math.ceil(bits.length / 5) * 5, '0').replace(/.{5}/g, (g) => alphabet[parseInt(g, 2)]!)
}

function field(out: string, name: string): string | undefined {
  return new RegExp(`^${name}: (.*)$`, 'm').exec(out)?.[1]
}

t.test('init, then show; openssl agrees', async (t) => {
  const dir = tempDir(t, 'ugate-identity-')
  const r = init(t, dir, '--days', '30')
  t.equal(r.code, 0, 'init exits 0', { stderr: r.stderr })
  const chain = readFileSync(join(dir, 'cert-chain.pem'), 'utf8')
  const id = referenceNodeId(chain)
  t.equal(field(r.stdout, 'node id'), id, 'init prints the node id of the certificate it wrote')
  t.equal(field(r.stdout, 'spiffe id'), SPIFFE)
  for (const f of ['key.pem', 'ca-key.pem']) t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is mode 600`)

  const text = openssl(t, ['x509', '-in', join(dir, 'cert-chain.pem'), '-noout', '-text'])
  t.match(text, `URI:${SPIFFE}`, 'openssl shows the URI SAN')
  t.match(text, /ASN1 OID: prime256v1/, 'a P-256 key')
  t.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/)
  t.match(openssl(t, ['x509', '-in', join(dir, 'root-cert.pem'), '-noout', '-text']), /CA:TRUE/)
  t.match(openssl(t, ['verify', '-CAfile', join(dir, 'root-cert.pem'), join(dir, 'cert-chain.pem')]), /: OK/)
  // The private key is the certificate's.
  const pub = (args: string[]) => openssl(t, [...args, '-pubout']).trim()
  t.equal(
    openssl(t, ['x509', '-in', join(dir, 'cert-chain.pem'), '-noout', '-pubkey']).trim(),
    pub(['pkey', '-in', join(dir, 'key.pem')]),
  )

  const s = show(t, dir)
  t.equal(s.code, 0, 'show exits 0', { stderr: s.stderr })
  t.equal(field(s.stdout, 'node id'), id)
  t.equal(field(s.stdout, 'spiffe id'), SPIFFE)
  const cert = new X509Certificate(chain)
  const iso = (d: string) => new Date(d).toISOString().replace('.000Z', 'Z')
  t.equal(field(s.stdout, 'valid'), `${iso(cert.validFrom)} to ${iso(cert.validTo)}`)
  t.equal(
    Date.parse(iso(cert.validTo)) - Date.parse(iso(cert.validFrom)),
    (30 * 86400 + 300) * 1000,
    '30 days (+5 min back-dated)',
  )
  t.equal(field(s.stdout, 'issuer'), 'O=mesh.test, CN=ugate root CA')
  t.match(field(s.stdout, 'chain'), `verified against ${join(dir, 'root-cert.pem')}`)
})

t.test('existing files are kept unless --force', async (t) => {
  const dir = tempDir(t, 'ugate-identity-')
  t.equal(init(t, dir).code, 0)
  const before = Object.fromEntries(FILES.map((f) => [f, readFileSync(join(dir, f), 'utf8')]))
  refused(t, init(t, dir), new RegExp(`${join(dir, 'root-cert.pem')}: already exists \\(--force`))
  for (const f of FILES) t.equal(readFileSync(join(dir, f), 'utf8'), before[f], `${f} unchanged`)
  // One file left from an earlier identity is enough to refuse.
  const dir2 = tempDir(t, 'ugate-identity-')
  writeFileSync(join(dir2, 'key.pem'), 'old')
  refused(t, init(t, dir2), new RegExp(`${join(dir2, 'key.pem')}: already exists`))
  t.equal(readFileSync(join(dir2, 'key.pem'), 'utf8'), 'old')
  const forced = init(t, dir, '--force')
  t.equal(forced.code, 0, 'with --force', { stderr: forced.stderr })
  t.not(readFileSync(join(dir, 'key.pem'), 'utf8'), before['key.pem'], 'a new key')
  t.equal(show(t, dir).code, 0)
  refused(t, init(t, join(dir, 'missing')), new RegExp(`${join(dir, 'missing', 'ca-key.pem')}: cannot write: ENOENT`))
})

/** A P-256 key and a CSR for it with the SPIFFE SAN, made by openssl in dir. */
function csr(t: Test, dir: string): string {
  openssl(t, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'key.pem')])
  openssl(t, ['req', '-new', '-key', join(dir, 'key.pem'), '-subj', '/O=mesh.test', '-out', join(dir, 'req.csr')])
  return join(dir, 'req.csr')
}

/** Sign a node certificate with the CA of dir for exactly [start, end] (openssl ca). */
function signDated(t: Test, dir: string, start: string, end: string): void {
  writeFileSync(join(dir, 'index.txt'), '')
  writeFileSync(
    join(dir, 'ca.cnf'),
    `[ca]\ndefault_ca = d\n[d]\ndatabase = ${dir}/index.txt\nnew_certs_dir = ${dir}\nserial = ${dir}/serial\n` +
      `default_md = sha256\npolicy = p\nunique_subject = no\n[p]\norganizationName = supplied\n` +
      `[ext]\nsubjectAltName = URI:${SPIFFE}\n`,
  )
  writeFileSync(join(dir, 'serial'), '1000\n')
  const args = ['ca', '-batch', '-notext', '-config', join(dir, 'ca.cnf'), '-extensions', 'ext']
  openssl(
    t,
    [...args, '-cert', join(dir, 'root-cert.pem'), '-keyfile', join(dir, 'ca-key.pem'), '-in', csr(t, dir)].concat([
      '-startdate',
      start,
      '-enddate',
      end,
      '-out',
      join(dir, 'cert-chain.pem'),
    ]),
  )
}

t.test('expired and not-yet-valid certificates are refused with the file and the date', async (t) => {
  const dir = tempDir(t, 'ugate-identity-')
  t.equal(init(t, dir).code, 0)
  signDated(t, dir, '20200101000000Z', '20210102030405Z')
  t.match(openssl(t, ['x509', '-in', join(dir, 'cert-chain.pem'), '-noout', '-enddate']), /Jan  2 03:04:05 2021 GMT/)
  refused(
    t,
    show(t, dir),
    new RegExp(`${join(dir, 'cert-chain.pem')}: certificate expired on 2021-01-02T03:04:05Z \\(now `),
  )
  signDated(t, dir, '20900301000000Z', '20910101000000Z')
  refused(
    t,
    show(t, dir),
    new RegExp(`${join(dir, 'cert-chain.pem')}: certificate is not valid before 2090-03-01T00:00:00Z`),
  )
  // In range again: accepted, so the refusals above were about the dates.
  signDated(t, dir, '20200101000000Z', '20900101000000Z')
  const s = show(t, dir)
  t.equal(s.code, 0, 'a certificate openssl signed with our CA is accepted', { stderr: s.stderr })
  t.equal(field(s.stdout, 'node id'), referenceNodeId(readFileSync(join(dir, 'cert-chain.pem'), 'utf8')))
})

t.test('RSA roots: PKCS#1 v1.5 and PSS signatures verify', async (t) => {
  for (const pss of [false, true]) {
    const dir = tempDir(t, 'ugate-identity-')
    openssl(t, [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(dir, 'ca-key.pem'),
      '-subj',
      '/O=mesh.test/CN=rsa root',
      '-days',
      '30',
      '-out',
      join(dir, 'root-cert.pem'),
    ])
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName = URI:${SPIFFE}\n`)
    const sig = pss ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32'] : []
    openssl(t, [
      'x509',
      '-req',
      '-in',
      csr(t, dir),
      '-CA',
      join(dir, 'root-cert.pem'),
      '-CAkey',
      join(dir, 'ca-key.pem'),
      '-CAcreateserial',
      '-days',
      '10',
      '-sha256',
      '-extfile',
      join(dir, 'ext.cnf'),
      ...sig,
      '-out',
      join(dir, 'cert-chain.pem'),
    ])
    t.match(
      openssl(t, ['x509', '-in', join(dir, 'cert-chain.pem'), '-noout', '-text']),
      pss ? /rsassaPss/ : /sha256WithRSAEncryption/,
    )
    const s = show(t, dir)
    t.equal(s.code, 0, pss ? 'RSA-PSS' : 'PKCS#1 v1.5', { stderr: s.stderr })
    t.equal(field(s.stdout, 'issuer'), 'O=mesh.test, CN=rsa root')
  }
})

t.test('untrusted chain, wrong key, bad PEM, missing file', async (t) => {
  const dir = tempDir(t, 'ugate-identity-')
  const other = tempDir(t, 'ugate-identity-')
  t.equal(init(t, dir).code, 0)
  t.equal(init(t, other).code, 0)
  const file = (d: string, f: string) => join(d, f)
  const keep = Object.fromEntries(FILES.map((f) => [f, readFileSync(file(dir, f), 'utf8')]))
  const restore = () => FILES.forEach((f) => writeFileSync(file(dir, f), keep[f]!))

  writeFileSync(file(dir, 'root-cert.pem'), readFileSync(file(other, 'root-cert.pem')))
  refused(
    t,
    show(t, dir),
    new RegExp(`${file(dir, 'cert-chain.pem')}: does not verify against ${file(dir, 'root-cert.pem')}: not-trusted`),
  )
  restore()
  writeFileSync(file(dir, 'key.pem'), readFileSync(file(other, 'key.pem')))
  refused(
    t,
    show(t, dir),
    new RegExp(`${file(dir, 'key.pem')}: is not the private key of ${file(dir, 'cert-chain.pem')}`),
  )
  restore()
  writeFileSync(file(dir, 'cert-chain.pem'), 'hello, not a certificate\n')
  refused(t, show(t, dir), new RegExp(`${file(dir, 'cert-chain.pem')}: no PEM certificate in it`))
  // A PEM frame around damaged base64.
  const lines = keep['cert-chain.pem']!.split('\n')
  lines[3] = lines[3]!.replace(/[A-Za-z]/g, '!')
  writeFileSync(file(dir, 'cert-chain.pem'), lines.join('\n'))
  refused(
    t,
    show(t, dir),
    new RegExp(`${file(dir, 'cert-chain.pem')}: not a valid PEM certificate \\(mbedTLS error -0x`),
  )
  restore()
  writeFileSync(file(dir, 'key.pem'), '-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n')
  refused(t, show(t, dir), new RegExp(`${file(dir, 'key.pem')}: not a valid PEM private key`))
  restore()
  writeFileSync(file(dir, 'root-cert.pem'), '')
  refused(t, show(t, dir), new RegExp(`${file(dir, 'root-cert.pem')}: no PEM certificate in it`))
  rmSync(file(dir, 'root-cert.pem'))
  refused(t, show(t, dir), new RegExp(`${file(dir, 'root-cert.pem')}: cannot read: ENOENT`))
})

t.test('damaged files (fixed seed): refused or accepted, never a crash', async (t) => {
  const dir = tempDir(t, 'ugate-identity-')
  t.equal(init(t, dir).code, 0)
  const good = Object.fromEntries(FILES.map((f) => [f, readFileSync(join(dir, f), 'utf8')]))
  const next = rng(0x1de717)
  const codes = new Set<number | null>()
  for (let i = 0; i < 24; i++) {
    const f = ['cert-chain.pem', 'root-cert.pem', 'key.pem'][i % 3]!
    const bytes = Buffer.from(good[f]!)
    // Inside the base64, so the PEM frame stays and the DER is damaged.
    for (let k = 0; k < 1 + Math.floor(next() * 4); k++) {
      const at = 28 + Math.floor(next() * (bytes.length - 60))
      bytes[at] = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(Math.floor(next() * 64))
    }
    writeFileSync(join(dir, f), bytes)
    const r = show(t, dir)
    codes.add(r.code)
    t.ok(r.code === 0 || (r.code === 1 && r.stderr.some((l) => l.startsWith(`ugate: ${dir}/`))), `${f} #${i}`, {
      stderr: r.stderr,
    })
    writeFileSync(join(dir, f), good[f]!)
  }
  t.ok(codes.has(1), 'some damage was refused')
})
