// `ugate identity init|show`: the identity files of a directory, made or
// checked with native/identity.c; names, dates and messages from core.

import * as native from 'ugate:native'
import { StartupError } from '../core/errors.js'
import {
  IDENTITY_FILES,
  type SpiffeId,
  formatSpiffeId,
  identityPlan,
  parseSpiffeId,
  validityProblem,
} from '../core/identity.js'
import { writeStdout } from './process.js'
import { describeError } from './sockets.js'

const KEY_MODE = 0o600
const CERT_MODE = 0o644

const path = (dir: string, file: string): string => `${dir.replace(/\/+$/, '') || '/'}/${file}`

function readText(file: string): string {
  try {
    return native.readFile(file)
  } catch (e) {
    throw new StartupError(`${file}: cannot read: ${describeError(e)}`)
  }
}

function exists(file: string): boolean {
  try {
    native.readFile(file)
    return true
  } catch (e) {
    return (e as { code?: unknown }).code !== 'ENOENT'
  }
}

/** `identity init`: writes the four files, prints the node id and the SPIFFE id. */
export function initIdentity(dir: string, id: SpiffeId, days: number, force: boolean): void {
  const files = {
    rootCert: path(dir, IDENTITY_FILES.rootCert),
    certChain: path(dir, IDENTITY_FILES.certChain),
    key: path(dir, IDENTITY_FILES.key),
    caKey: path(dir, IDENTITY_FILES.caKey),
  }
  if (!force) {
    const taken = Object.values(files).find(exists)
    if (taken !== undefined) throw new StartupError(`${taken}: already exists (--force replaces the identity)`)
  }
  let made: ReturnType<typeof native.identityCreate>
  try {
    made = native.identityCreate(identityPlan(id, days, native.wallClock()))
  } catch (e) {
    throw new StartupError(`identity init: ${describeError(e)}`)
  }
  const write = (file: string, text: string, mode: number): void => {
    try {
      native.writeFile(file, text, mode, !force)
    } catch (e) {
      throw new StartupError(`${file}: cannot write: ${describeError(e)}`)
    }
  }
  // Keys first: a certificate without its key is of no use.
  write(files.caKey, made.caKey, KEY_MODE)
  write(files.key, made.key, KEY_MODE)
  write(files.rootCert, made.rootCert, CERT_MODE)
  write(files.certChain, made.certChain, CERT_MODE)
  const leaf = inspect(files.certChain, made.certChain, files.rootCert, made.rootCert).certs[0]!
  writeStdout(`node id: ${leaf.nodeId!}\nspiffe id: ${formatSpiffeId(id)}\n`)
}

function inspect(
  chainFile: string,
  chainPem: string,
  rootFile: string,
  rootPem: string,
  keyFile?: string,
  keyPem?: string,
): { certs: native.CertInfo[]; verify: string; keyMatches?: boolean } {
  const r = native.identityInspect(chainPem, rootPem, keyPem)
  if ('error' in r) {
    const file = r.error === 'chain' ? chainFile : r.error === 'root' ? rootFile : keyFile!
    throw new StartupError(`${file}: ${r.message}`)
  }
  return r
}

/** `identity show`: refuses what `run` would refuse; prints the identity. */
export function showIdentity(dir: string): void {
  const rootFile = path(dir, IDENTITY_FILES.rootCert)
  const chainFile = path(dir, IDENTITY_FILES.certChain)
  const keyFile = path(dir, IDENTITY_FILES.key)
  const rootPem = readText(rootFile)
  const chainPem = readText(chainFile)
  const keyPem = readText(keyFile)
  const now = native.wallClock()
  const roots = inspect(rootFile, rootPem, rootFile, rootPem).certs
  const r = inspect(chainFile, chainPem, rootFile, rootPem, keyFile, keyPem)
  const dated = [...r.certs.map((c) => ({ file: chainFile, c })), ...roots.map((c) => ({ file: rootFile, c }))]
  for (const { file, c } of dated) {
    const problem = validityProblem(file, c.notBefore, c.notAfter, now)
    if (problem !== null) throw new StartupError(problem)
  }
  if (r.verify !== '') throw new StartupError(`${chainFile}: does not verify against ${rootFile}: ${r.verify}`)
  if (r.keyMatches !== true) throw new StartupError(`${keyFile}: is not the private key of ${chainFile}`)
  const leaf = r.certs[0]!
  const spiffe = leaf.uris.map((u) => ({ u, p: parseSpiffeId(u) }))
  const ok = spiffe.find((s) => 'id' in s.p)
  if (ok === undefined) {
    const why = spiffe.map((s) => `${s.u} ${'error' in s.p ? s.p.error : ''}`).join('; ')
    throw new StartupError(`${chainFile}: no SPIFFE id in the certificate's URI SANs${why ? ` (${why})` : ''}`)
  }
  if (leaf.nodeId === null) throw new StartupError(`${chainFile}: the certificate's key is not P-256`)
  writeStdout(
    `node id: ${leaf.nodeId}\n` +
      `spiffe id: ${ok.u}\n` +
      `valid: ${leaf.notBefore} to ${leaf.notAfter}\n` +
      `issuer: ${leaf.issuer}\n` +
      `chain: ${r.certs.length} certificate(s), verified against ${rootFile}\n` +
      `key: ${keyFile} matches\n`,
  )
}
