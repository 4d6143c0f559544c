// A strict reader of APK v3 packages (apk-tools v3, OpenWrt 25.12 and later),
// for the tests. It reads every byte and rejects anything apk mkpkg would not
// write for an OpenWrt package like ours, with an ApkError whose `code` names
// the rule (docs/openwrt.md has the format and its sources):
//
//   container  "ADBd" + one raw deflate stream, nothing after it; inside:
//              "ADB." + schema "pckg", then blocks (u32 LE type << 30 |
//              4 + length, zero padding to 8): one ADB, then SIG blocks,
//              then DATA blocks; the last block ends the stream
//   ADB        header (compat 0, version 0, reserved 0, root object); every
//              value well-formed and canonical (the smallest encoding, no
//              empty blobs, no trailing null slots, objects and arrays
//              tagged "object" as mkpkg writes them, 4-byte aligned), array
//              items sorted and unique, every byte referenced or alignment
//              padding (zero, < 4 bytes)
//   schema     package { info, paths, scripts }; info: the fields OpenWrt
//              sets (name, version `<ver>-r<rel>`, hashes, description,
//              arch, license, origin, maintainer, url, installed-size,
//              depends) with those types; hashes = SHA-256 of the ADB with
//              them zeroed (20 bytes); installed-size = sum of file sizes;
//              paths: every directory, root first, parents listed, owner
//              root:root, no xattrs; files: regular, with size, mtime and
//              SHA-256
//   DATA       exactly one block per non-empty file, in path/file order,
//              its bytes of the file's size and hash
//   scripts    post-install, post-upgrade and pre-deinstall present (what
//              OpenWrt's package build writes), each starting with "#!"
//   apk db     /lib/apk/packages/<name>.list lists every file (but itself
//              and the conffiles files), sorted; <name>.conffiles lists
//              files of the package and <name>.conffiles_static their
//              shipped SHA-256

import { createHash, verify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { inflateRawSync } from 'node:zlib'

export class ApkError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`)
    this.name = 'ApkError'
  }
}

function fail(code: string, message: string): never {
  throw new ApkError(code, message)
}

// ---------------------------------------------------------------------------
// the schema (apk_adb.h / apk_adb.c: slot numbers, names and kinds)

type Kind = 'string' | 'hex' | 'int' | { obj: string } | { arr: Kind }

export const SCHEMAS: Record<string, Array<[string, Kind]>> = {
  package: [
    ['info', { obj: 'info' }],
    ['paths', { arr: { obj: 'dir' } }],
    ['scripts', { obj: 'scripts' }],
    ['triggers', { arr: 'string' }],
    ['replaces-priority', 'int'],
  ],
  info: [
    ['name', 'string'],
    ['version', 'string'],
    ['hashes', 'hex'],
    ['description', 'string'],
    ['arch', 'string'],
    ['license', 'string'],
    ['origin', 'string'],
    ['maintainer', 'string'],
    ['url', 'string'],
    ['repo-commit', 'hex'],
    ['build-time', 'int'],
    ['installed-size', 'int'],
    ['file-size', 'int'],
    ['provider-priority', 'int'],
    ['depends', { arr: { obj: 'dependency' } }],
    ['provides', { arr: { obj: 'dependency' } }],
    ['replaces', { arr: { obj: 'dependency' } }],
    ['install-if', { arr: { obj: 'dependency' } }],
    ['recommends', { arr: { obj: 'dependency' } }],
    ['layer', 'int'],
    ['tags', { arr: 'string' }],
  ],
  dependency: [
    ['name', 'string'],
    ['version', 'string'],
    ['match', 'int'],
  ],
  dir: [
    ['name', 'string'],
    ['acl', { obj: 'acl' }],
    ['files', { arr: { obj: 'file' } }],
  ],
  file: [
    ['name', 'string'],
    ['acl', { obj: 'acl' }],
    ['size', 'int'],
    ['mtime', 'int'],
    ['hash', 'hex'],
    ['target', 'hex'],
  ],
  acl: [
    ['mode', 'int'],
    ['user', 'string'],
    ['group', 'string'],
    ['xattrs', { arr: 'string' }],
  ],
  scripts: [
    ['trigger', 'string'],
    ['pre-install', 'string'],
    ['post-install', 'string'],
    ['pre-deinstall', 'string'],
    ['post-deinstall', 'string'],
    ['pre-upgrade', 'string'],
    ['post-upgrade', 'string'],
  ],
}

/** Info fields OpenWrt's package-pack.mk sets for packages like ours; the others must be absent. */
export const INFO_ALLOWED = [
  'name',
  'version',
  'hashes',
  'description',
  'arch',
  'license',
  'origin',
  'maintainer',
  'url',
  'installed-size',
  'depends',
]
/** Scripts OpenWrt writes for every package (package-pack.mk). */
export const REQUIRED_SCRIPTS = ['post-install', 'post-upgrade', 'pre-deinstall'] as const
export const DEFAULT_APK_ARCHS = [
  'x86_64',
  'aarch64_generic',
  'arm_cortex-a7_neon-vfpv4',
  'mipsel_24kc',
  'mips_24kc',
  'noarch',
] as const
/** apk-package(5): number{.number}...{letter}{_suffix{number}}...{~hash}-r#, the release required (OpenWrt). */
export const APK_VERSION_RE =
  /^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?-r[0-9]+$/
export const APK_NAME_RE = /^[a-z0-9][a-z0-9._+-]*$/

// ---------------------------------------------------------------------------
// ADB values

const T = { special: 0, int: 1, int32: 2, int64: 3, blob8: 8, blob16: 9, blob32: 10, array: 13, object: 14 }

/** A parsed value: scalars as bytes or numbers, objects as slot maps. */
export type AdbNode = Buffer | number | AdbObject | AdbNode[]
export interface AdbObject {
  [field: string]: AdbNode
}

class AdbParser {
  private covered: Uint8Array
  constructor(readonly adb: Buffer) {
    this.covered = new Uint8Array(adb.length)
    this.covered.fill(1, 0, 8) // the header
  }

  private take(off: number, len: number, align: number, what: string): Buffer {
    if (off % align !== 0) fail('adb-align', `${what} at ${off} is not ${align}-byte aligned`)
    if (off + len > this.adb.length)
      fail('adb-bounds', `${what} at ${off}+${len} runs past the ADB block (${this.adb.length})`)
    this.covered.fill(1, off, off + len)
    return this.adb.subarray(off, off + len)
  }

  value(v: number, kind: Kind, where: string): AdbNode | null {
    if (v === 0) return null
    const type = v >>> 28
    const x = v & 0x0fffffff
    if (kind === 'string' || kind === 'hex') {
      let len: number
      let data: number
      if (type === T.blob8) {
        len = this.take(x, 1, 1, where)[0]!
        data = x + 1
        if (len === 0) fail('adb-noncanonical', `${where}: empty blob (apk writes null)`)
      } else if (type === T.blob16) {
        len = this.take(x, 2, 2, where).readUInt16LE(0)
        data = x + 2
        if (len <= 0xff) fail('adb-noncanonical', `${where}: ${len}-byte blob in a 16-bit length`)
      } else if (type === T.blob32) {
        len = this.take(x, 4, 4, where).readUInt32LE(0)
        data = x + 4
        if (len <= 0xffff) fail('adb-noncanonical', `${where}: ${len}-byte blob in a 32-bit length`)
      } else fail('adb-type', `${where}: type 0x${type.toString(16)} where a blob belongs`)
      return this.take(data, len, 1, where) // a view: its offset locates info.hashes
    }
    if (kind === 'int') {
      if (type === T.int) return x
      if (type === T.int32) {
        const n = this.take(x, 4, 4, where).readUInt32LE(0)
        if (n < 0x10000000) fail('adb-noncanonical', `${where}: ${n} stored as int32 (fits the tag)`)
        return n
      }
      if (type === T.int64) {
        const n = this.take(x, 8, 4, where).readBigUInt64LE(0)
        if (n < 0x100000000n) fail('adb-noncanonical', `${where}: ${n} stored as int64`)
        if (n > BigInt(Number.MAX_SAFE_INTEGER)) fail('adb-bounds', `${where}: ${n} is too large`)
        return Number(n)
      }
      fail('adb-type', `${where}: type 0x${type.toString(16)} where an integer belongs`)
    }
    // objects and arrays: u32 count (itself included), then the slots
    if (type !== T.object) {
      fail(
        'adb-type',
        `${where}: type 0x${type.toString(16)} where ${'obj' in kind ? 'an object' : 'an array'} (tagged object, as mkpkg writes it) belongs`,
      )
    }
    const n = this.take(x, 4, 4, where).readUInt32LE(0)
    if (n < 2) fail('adb-noncanonical', `${where}: ${n}-slot object (apk writes null)`)
    if (n > 4096) fail('adb-bounds', `${where}: ${n} slots`)
    const slots = this.take(x, 4 * n, 4, where)
    const vals = Array.from({ length: n - 1 }, (_, i) => slots.readUInt32LE(4 * (i + 1)))
    if (vals[vals.length - 1] === 0) fail('adb-noncanonical', `${where}: trailing null slot`)
    if ('arr' in kind) {
      return vals.map((iv, i) => {
        const item = this.value(iv, kind.arr, `${where}[${i + 1}]`)
        if (item === null) fail('adb-noncanonical', `${where}[${i + 1}]: null array item`)
        return item
      })
    }
    const schema = SCHEMAS[kind.obj]!
    if (vals.length > schema.length)
      fail('adb-schema', `${where}: ${vals.length} slots, a ${kind.obj} has ${schema.length}`)
    const obj: AdbObject = {}
    vals.forEach((sv, i) => {
      const [name, k] = schema[i]!
      const item = this.value(sv, k, `${where}.${name}`)
      if (item !== null) obj[name] = item
    })
    return obj
  }

  /** Unreferenced bytes may only be alignment padding: zeros, fewer than 4 in a row. */
  checkCoverage(): void {
    let run = 0
    for (let i = 0; i < this.adb.length; i++) {
      if (this.covered[i]) {
        run = 0
        continue
      }
      if (this.adb[i] !== 0) fail('adb-unreferenced', `byte ${i} of the ADB block is neither a value nor padding`)
      if (++run >= 4) fail('adb-unreferenced', `unreferenced bytes at ${i - 3}..${i} of the ADB block`)
    }
  }
}

// ---------------------------------------------------------------------------
// the package

export interface ApkFile {
  /** Absolute path, e.g. "/usr/bin/ugate". */
  path: string
  mode: number
  user: string
  group: string
  size: number
  mtime: number
  hash: Buffer
  data: Buffer
}
export interface ApkDir {
  /** "" for the root. */
  name: string
  mode: number
  user: string
  group: string
  files: ApkFile[]
}
export interface ApkInfo {
  name: string
  version: string
  hashes: Buffer
  description?: string
  arch: string
  license?: string
  origin?: string
  maintainer?: string
  url?: string
  installedSize: number
  depends: string[]
}
export interface ApkSignature {
  hashAlg: number
  keyId: Buffer
  signature: Buffer
}
export interface Apk {
  info: ApkInfo
  dirs: ApkDir[]
  files: ApkFile[]
  scripts: Record<string, string>
  signatures: ApkSignature[]
  conffiles: string[]
  list: string[]
  /** The ADB block's payload, the decompressed stream and the parsed tree. */
  adb: Buffer
  stream: Buffer
  tree: AdbObject
  /** Sizes of the blocks after the ADB one, as apk adbdump prints them. */
  blocks: Array<{ type: 'sig' | 'data'; size: number }>
}

export interface ReadApkOptions {
  archs?: readonly string[]
  /** Every file's mtime must be this (SOURCE_DATE_EPOCH). */
  epoch?: number
  /** Verify the signatures with this key; also require one. */
  publicKey?: KeyObject
}

const str = (n: AdbNode | undefined, where: string): string => {
  if (n === undefined) fail('missing-field', `${where} is missing`)
  if (!Buffer.isBuffer(n)) fail('adb-type', `${where} is not a string`)
  const s = n.toString('utf8')
  if (!Buffer.from(s, 'utf8').equals(n)) fail('bad-string', `${where} is not UTF-8`)
  return s
}
const int = (n: AdbNode | undefined, where: string): number => {
  if (typeof n !== 'number') fail('missing-field', `${where} is missing`)
  return n
}
const obj = (n: AdbNode | undefined): AdbObject => (n ?? {}) as AdbObject
const arr = (n: AdbNode | undefined): AdbNode[] => (n ?? []) as AdbNode[]

function ascending(names: string[], where: string): void {
  for (let i = 1; i < names.length; i++) {
    if (Buffer.compare(Buffer.from(names[i - 1]!), Buffer.from(names[i]!)) >= 0) {
      fail(
        'adb-order',
        `${where}: ${JSON.stringify(names[i])} after ${JSON.stringify(names[i - 1])} (apk sorts and dedups)`,
      )
    }
  }
}

function checkAcl(a: AdbObject, where: string): { mode: number; user: string; group: string } {
  const mode = int(a.mode, `${where}.mode`)
  if (mode > 0o7777) fail('bad-mode', `${where}.mode ${mode.toString(8)} has type bits`)
  const user = str(a.user, `${where}.user`)
  const group = str(a.group, `${where}.group`)
  if (user !== 'root' || group !== 'root')
    fail('non-root-owner', `${where} is owned by ${user}:${group}, not root:root`)
  if (a.xattrs !== undefined) fail('unexpected-field', `${where} has xattrs`)
  return { mode, user, group }
}

/** Split the decompressed stream into its blocks. */
function blocksOf(stream: Buffer): Array<{ type: number; payload: Buffer; size: number }> {
  if (stream.length < 8 || stream.subarray(0, 4).toString('latin1') !== 'ADB.')
    fail('not-adb', 'the stream does not start with "ADB."')
  const schema = stream.readUInt32LE(4)
  if (schema !== 0x676b6370) fail('bad-schema', `schema 0x${schema.toString(16)} is not a package ("pckg")`)
  const out: Array<{ type: number; payload: Buffer; size: number }> = []
  let off = 8
  while (off < stream.length) {
    if (off + 4 > stream.length) fail('truncated', `block header at ${off} is cut off`)
    const h = stream.readUInt32LE(off)
    const type = h >>> 30
    const raw = h & 0x3fffffff
    if (type === 3) fail('bad-block', `extended block header at ${off} (not used for packages this size)`)
    if (raw < 4) fail('bad-block', `block at ${off} has size ${raw}`)
    const end = off + raw
    const padded = off + Math.ceil(raw / 8) * 8
    if (padded > stream.length)
      fail('truncated', `block at ${off} (${raw} bytes, padded ${padded - off}) runs past the end (${stream.length})`)
    for (let i = end; i < padded; i++) if (stream[i] !== 0) fail('bad-padding', `block padding at ${i} is not zero`)
    out.push({ type, payload: stream.subarray(off + 4, end), size: raw - 4 })
    off = padded
  }
  return out
}

/** Read the decompressed stream ("ADB." ...) strictly. */
export function readApkStream(stream: Buffer, opts: ReadApkOptions = {}): Apk {
  const blocks = blocksOf(stream)
  if (blocks.length === 0 || blocks[0]!.type !== 0) fail('bad-block', 'the first block is not the ADB block')
  const adb = blocks[0]!.payload
  let stage = 1
  const signatures: ApkSignature[] = []
  const data: Buffer[] = []
  for (const [i, b] of blocks.slice(1).entries()) {
    if (b.type === 0) fail('bad-block', `block ${i + 2}: a second ADB block`)
    if (b.type === 1) {
      if (stage > 1) fail('bad-block', `block ${i + 2}: a signature after the data`)
      const p = b.payload
      if (p.length < 19) fail('bad-signature', `signature block of ${p.length} bytes`)
      if (p[0] !== 0) fail('bad-signature', `signature version ${p[0]} (0 is defined)`)
      if (p[1] !== 4) fail('bad-signature', `signature digest ${p[1]} (4, SHA-512, is what apk writes)`)
      signatures.push({ hashAlg: p[1]!, keyId: Buffer.from(p.subarray(2, 18)), signature: Buffer.from(p.subarray(18)) })
    } else {
      stage = 2
      data.push(b.payload)
    }
  }

  // ADB header and tree
  if (adb.length < 8) fail('truncated', `ADB block of ${adb.length} bytes`)
  if (adb[0] !== 0 || adb[1] !== 0 || adb.readUInt16LE(2) !== 0) {
    fail('bad-header', `ADB header compat ${adb[0]}, version ${adb[1]}, reserved ${adb.readUInt16LE(2)} (0, 0, 0)`)
  }
  const parser = new AdbParser(adb)
  const tree = parser.value(adb.readUInt32LE(4), { obj: 'package' }, 'package')
  if (tree === null) fail('adb-schema', 'the package object is null')
  parser.checkCoverage()
  const pkg = tree as AdbObject
  for (const k of Object.keys(pkg))
    if (!['info', 'paths', 'scripts'].includes(k)) fail('unexpected-field', `package.${k}`)

  // info
  const i = obj(pkg.info)
  for (const k of Object.keys(i))
    if (!INFO_ALLOWED.includes(k)) fail('unexpected-field', `info.${k} (OpenWrt does not set it)`)
  const name = str(i.name, 'info.name')
  if (!APK_NAME_RE.test(name)) fail('bad-name', `info.name ${JSON.stringify(name)}`)
  const version = str(i.version, 'info.version')
  if (!APK_VERSION_RE.test(version))
    fail('bad-version', `info.version ${JSON.stringify(version)} is not <ver>-r<rel> in apk's syntax`)
  const arch = str(i.arch, 'info.arch')
  const archs = opts.archs ?? DEFAULT_APK_ARCHS
  if (!archs.includes(arch)) fail('bad-arch', `info.arch ${JSON.stringify(arch)} is not one of ${archs.join(', ')}`)
  const hashes = i.hashes
  if (!Buffer.isBuffer(hashes) || hashes.length !== 20) fail('bad-hashes', 'info.hashes is not 20 bytes')
  const at = hashes.byteOffset - adb.byteOffset
  const blank = Buffer.from(adb)
  blank.fill(0, at, at + 20)
  const want = createHash('sha256').update(blank).digest().subarray(0, 20)
  if (!want.equals(hashes))
    fail('bad-hashes', `info.hashes ${hashes.toString('hex')} but the ADB hashes to ${want.toString('hex')}`)
  const optional = (k: string) => (i[k] === undefined ? undefined : str(i[k], `info.${k}`))
  const description = optional('description')
  if (description !== undefined && (description.includes('\n') || Buffer.byteLength(description) > 256)) {
    fail('bad-description', 'info.description is not one line of at most 256 bytes (OpenWrt truncates there)')
  }
  const depends = arr(i.depends).map((d, n) => {
    const o = d as AdbObject
    for (const k of Object.keys(o))
      if (k !== 'name') fail('unexpected-field', `info.depends[${n + 1}].${k} (no versioned dependencies here)`)
    const dn = str(o.name, `info.depends[${n + 1}].name`)
    if (!APK_NAME_RE.test(dn)) fail('bad-depends', `dependency ${JSON.stringify(dn)}`)
    return dn
  })
  ascending(depends, 'info.depends')

  // paths
  const dirs: ApkDir[] = []
  const files: ApkFile[] = []
  const seen = new Set<string>()
  for (const [n, d] of arr(pkg.paths).entries()) {
    const o = d as AdbObject
    const dname = o.name === undefined ? '' : str(o.name, `paths[${n + 1}].name`)
    const where = `paths[${n + 1}] ${JSON.stringify(dname)}`
    if (n === 0 && dname !== '') fail('bad-path', 'the first directory is not the root')
    if (dname !== '') {
      if (dname.split('/').some((c) => c === '' || c === '.' || c === '..'))
        fail('unsafe-path', `${where}: empty, "." or ".." component`)
      const parent = dname.includes('/') ? dname.slice(0, dname.lastIndexOf('/')) : ''
      if (!seen.has(parent)) fail('bad-path', `${where}: its parent is not listed before it`)
    }
    seen.add(dname)
    const acl = checkAcl(obj(o.acl), `${where}.acl`)
    const dir: ApkDir = { name: dname, ...acl, files: [] }
    const fnames: string[] = []
    for (const [m, f] of arr(o.files).entries()) {
      const fo = f as AdbObject
      const fname = str(fo.name, `${where}.files[${m + 1}].name`)
      const fwhere = `${dname ? `/${dname}` : ''}/${fname}`
      if (fname === '' || fname.includes('/') || fname === '.' || fname === '..')
        fail('unsafe-path', `file name ${JSON.stringify(fname)}`)
      if (fo.target !== undefined)
        fail('unexpected-field', `${fwhere}: a link or device (only regular files are shipped)`)
      const facl = checkAcl(obj(fo.acl), `${fwhere}.acl`)
      const size = int(fo.size, `${fwhere}.size`)
      const mtime = int(fo.mtime, `${fwhere}.mtime`)
      if (opts.epoch !== undefined && mtime !== opts.epoch)
        fail('bad-mtime', `${fwhere}: mtime ${mtime}, not ${opts.epoch}`)
      const hash = fo.hash
      if (!Buffer.isBuffer(hash) || hash.length !== 32) fail('bad-hash', `${fwhere}: the hash is not a SHA-256`)
      fnames.push(fname)
      const file: ApkFile = { path: fwhere, ...facl, size, mtime, hash, data: Buffer.alloc(0) }
      dir.files.push(file)
      files.push(file)
    }
    ascending(fnames, `${where}.files`)
    dirs.push(dir)
  }
  if (dirs.length === 0) fail('bad-path', 'no paths')
  ascending(
    dirs.map((d) => d.name),
    'paths',
  )
  const installed = files.reduce((s, f) => s + f.size, 0)
  const installedSize = int(i['installed-size'], 'info.installed-size')
  if (installedSize !== (installed || 1))
    fail('installed-size', `info.installed-size ${installedSize} but the files hold ${installed} bytes`)

  // data blocks: one per non-empty file, in order
  const expected: Array<[number, number, ApkFile]> = []
  dirs.forEach((d, di) => d.files.forEach((f, fi) => f.size > 0 && expected.push([di + 1, fi + 1, f])))
  if (data.length !== expected.length)
    fail('data-blocks', `${data.length} data blocks for ${expected.length} non-empty files`)
  data.forEach((b, n) => {
    const [pi, fi, f] = expected[n]!
    if (b.length < 8) fail('data-blocks', `data block ${n + 1} has no index header`)
    if (b.readUInt32LE(0) !== pi || b.readUInt32LE(4) !== fi) {
      fail(
        'data-blocks',
        `data block ${n + 1} is for path ${b.readUInt32LE(0)} file ${b.readUInt32LE(4)}, expected ${pi}/${fi} (${f.path})`,
      )
    }
    f.data = Buffer.from(b.subarray(8))
    if (f.data.length !== f.size) fail('data-size', `${f.path}: ${f.data.length} bytes of data, size says ${f.size}`)
  })
  for (const f of files) {
    if (!createHash('sha256').update(f.data).digest().equals(f.hash))
      fail('data-hash', `${f.path}: content does not match its SHA-256`)
  }

  // scripts
  const scripts: Record<string, string> = {}
  for (const [k, v] of Object.entries(obj(pkg.scripts))) scripts[k] = str(v, `scripts.${k}`)
  for (const s of REQUIRED_SCRIPTS) if (scripts[s] === undefined) fail('missing-script', `no ${s} script`)
  for (const [k, v] of Object.entries(scripts))
    if (!v.startsWith('#!')) fail('script-no-shebang', `${k} does not start with "#!"`)

  // apk's package database files
  const byPath = new Map(files.map((f) => [f.path, f]))
  const db = `/lib/apk/packages/${name}`
  const listFile = byPath.get(`${db}.list`)
  if (!listFile) fail('missing-list', `no ${db}.list`)
  const lines = (f: ApkFile): string[] => {
    const t = f.data.toString('utf8')
    if (t === '' || !t.endsWith('\n')) fail('db-syntax', `${f.path} is empty or does not end with a newline`)
    return t.slice(0, -1).split('\n')
  }
  const list = lines(listFile)
  const own = new Set([`${db}.list`, `${db}.conffiles`, `${db}.conffiles_static`])
  const wantList = files
    .map((f) => f.path)
    .filter((p) => !own.has(p))
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  if (list.join('\n') !== wantList.join('\n'))
    fail('bad-list', `${db}.list is ${JSON.stringify(list)}, the package holds ${JSON.stringify(wantList)}`)
  const cf = byPath.get(`${db}.conffiles`)
  const cfs = byPath.get(`${db}.conffiles_static`)
  if (!cf !== !cfs) fail('conffiles', `${db}.conffiles and .conffiles_static come together`)
  const conffiles = cf ? lines(cf) : []
  if (cfs) {
    const statics = lines(cfs)
    if (statics.length !== conffiles.length)
      fail('conffiles', `${db}.conffiles_static has ${statics.length} lines for ${conffiles.length} conffiles`)
    conffiles.forEach((c, n) => {
      const f = byPath.get(c)
      if (!c.startsWith('/') || !f)
        fail('conffile-missing', `conffile ${JSON.stringify(c)} is not a file of the package`)
      const expect = `${c} ${f.hash.toString('hex')}`
      if (statics[n] !== expect)
        fail(
          'conffiles',
          `${db}.conffiles_static line ${n + 1} is ${JSON.stringify(statics[n])}, expected ${JSON.stringify(expect)}`,
        )
    })
  }

  if (opts.publicKey) {
    if (signatures.length === 0) fail('unsigned', 'no signature block')
    const md = createHash('sha512').update(adb).digest()
    const schema = Buffer.alloc(4)
    schema.writeUInt32LE(0x676b6370)
    const ok = signatures.some((s) =>
      verify('sha512', Buffer.concat([schema, Buffer.from([0, s.hashAlg]), s.keyId, md]), opts.publicKey!, s.signature),
    )
    if (!ok) fail('bad-signature', 'no signature verifies with the given key')
  }

  return {
    info: {
      name,
      version,
      hashes,
      ...(description === undefined ? {} : { description }),
      arch,
      ...Object.fromEntries(
        ['license', 'origin', 'maintainer', 'url'].flatMap((k) => (i[k] === undefined ? [] : [[k, optional(k)]])),
      ),
      installedSize,
      depends,
    },
    dirs,
    files,
    scripts,
    signatures,
    conffiles,
    list,
    adb,
    stream,
    tree: pkg,
    blocks: blocks.slice(1).map((b) => ({ type: b.type === 1 ? 'sig' : 'data', size: b.size })),
  }
}

/** Read an .apk file: "ADBd" + one raw deflate stream, then readApkStream. */
export function readApk(file: Buffer, opts: ReadApkOptions = {}): Apk {
  if (file.length < 4 || file.subarray(0, 4).toString('latin1') !== 'ADBd') {
    fail(
      'not-apk',
      `the file starts with ${JSON.stringify(file.subarray(0, 4).toString('latin1'))}, not "ADBd" (deflate, mkpkg's default)`,
    )
  }
  let stream: Buffer
  let used: number
  try {
    const r = inflateRawSync(file.subarray(4), { info: true }) as unknown as {
      buffer: Buffer
      engine: { bytesWritten: number }
    }
    stream = r.buffer
    used = r.engine.bytesWritten
  } catch (e) {
    fail('deflate', `the deflate stream is broken: ${(e as Error).message}`)
  }
  if (used !== file.length - 4) fail('trailing-data', `${file.length - 4 - used} bytes after the deflate stream`)
  return readApkStream(stream, opts)
}
