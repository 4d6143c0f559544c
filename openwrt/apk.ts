// APK v3 package writer: the file `apk mkpkg` (apk-tools v3) writes, for
// OpenWrt 25.12 and later. Ours, written from the format's documentation
// (apk-v3(5), apk-package(5), apk-mkpkg(8)) and its public headers; see
// docs/openwrt.md for the sources and what each choice follows.
//
//   file       "ADBd" + raw deflate (level 9, window 15) of:
//              "ADB." + schema "pckg" (u32 LE), then 8-byte aligned blocks
//              (u32 LE header: type << 30 | 4 + length):
//              ADB (the metadata), SIG (0 or 1, when signing),
//              DATA (one per non-empty file: u32 path index, u32 file index,
//              the bytes)
//   ADB block  u8 compat 0, u8 version 0, u16 0, u32 root value, then the
//              values: u32 LE tags (type in the top 4 bits, value or offset
//              below), blobs (u8/u16/u32 length + bytes), objects
//              (u32 count incl. itself + u32 slots); equal data is written
//              once (apk's write cache), with apk's alignments and write
//              order, so the uncompressed bytes equal apk mkpkg's
//   package    { info, paths: [{ name, acl, files: [{ name, acl, size,
//              mtime, hash (SHA-256) }] }], scripts }; every directory is
//              listed (mkpkg's default compat 3.0.0_pre1), owner root:root,
//              mtime SOURCE_DATE_EPOCH; info.hashes = first 20 bytes of the
//              SHA-256 of the ADB block (computed with them zeroed)
//   signature  SIG block: u8 0, u8 4 (SHA-512), 16-byte key id (SHA-512 of
//              the DER public key), signature over u32 schema + those 18
//              bytes + SHA-512(ADB block)
//
//   node apk.mjs --files DIR --output FILE --info KEY:VALUE... \
//     [--script TYPE:FILE]... [--sign-key PRIVATE.pem]

import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { lstatSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { deflateRawSync } from 'node:zlib'

// ---- the format's numbers (apk-v3(5); adb.h, apk_adb.h) ----------------------
const T_INT = 0x1
const T_INT32 = 0x2
const T_INT64 = 0x3
const T_BLOB8 = 0x8
const T_BLOB16 = 0x9
const T_BLOB32 = 0xa
const T_OBJECT = 0xe
const BLOCK_ADB = 0
const BLOCK_SIG = 1
const BLOCK_DATA = 2
const SCHEMA_PACKAGE = 0x676b6370 // "pckg"
const DIGEST_SHA512 = 4
/** The info slots this writer fills (apk_adb.h ADBI_PI_*); 21 in all. */
const INFO_SLOTS = {
  name: 1,
  version: 2,
  hashes: 3,
  description: 4,
  arch: 5,
  license: 6,
  origin: 7,
  maintainer: 8,
  url: 9,
  'installed-size': 12,
  depends: 15,
} as const
const INFO_MAX = 21
export const SCRIPT_TYPES = [
  'trigger',
  'pre-install',
  'post-install',
  'pre-deinstall',
  'post-deinstall',
  'pre-upgrade',
  'post-upgrade',
] as const
export type ScriptType = (typeof SCRIPT_TYPES)[number]
/** The string fields `--info` may set (OpenWrt's package-pack.mk sets these). */
const STRING_INFO = ['name', 'version', 'description', 'arch', 'license', 'origin', 'maintainer', 'url'] as const
const slot = (f: keyof typeof INFO_SLOTS) => INFO_SLOTS[f]

const NULL = 0
const val = (type: number, v: number) => ((type << 28) | v) >>> 0

/** apk's ADB value writer: appends with alignment, reuses equal data. */
class Adb {
  private buf = Buffer.alloc(1 << 16)
  len = 0
  private cache = new Map<string, number>()

  constructor() {
    this.raw(Buffer.alloc(8), 8) // header: compat 0, version 0, root set last
  }

  private raw(bytes: Buffer, align: number): number {
    const pad = (align - (this.len % align)) % align
    while (this.len + pad + bytes.length > this.buf.length) {
      const bigger = Buffer.alloc(this.buf.length * 2)
      this.buf.copy(bigger, 0, 0, this.len)
      this.buf = bigger
    }
    this.buf.fill(0, this.len, this.len + pad)
    this.len += pad
    const off = this.len
    bytes.copy(this.buf, off)
    this.len += bytes.length
    return off
  }

  /** Equal bytes already written at a suitable alignment are referenced again. */
  private data(bytes: Buffer, align: number): number {
    const key = bytes.toString('latin1')
    const known = this.cache.get(key)
    if (known !== undefined && known % align === 0) return known
    const off = this.raw(bytes, align)
    this.cache.set(key, off)
    return off
  }

  blob(b: Buffer | string | null, cached = true): number {
    const bytes = typeof b === 'string' ? Buffer.from(b) : b
    if (!bytes || bytes.length === 0) return NULL
    const n = bytes.length
    const [type, head] = n > 0xffff ? [T_BLOB32, u32(n)] : n > 0xff ? [T_BLOB16, u16(n)] : [T_BLOB8, Buffer.from([n])]
    const all = Buffer.concat([head, bytes])
    return val(type, cached ? this.data(all, head.length) : this.raw(all, head.length))
  }

  int(n: number): number {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`ADB integer ${n} out of range`)
    if (n < 0x10000000) return val(T_INT, n)
    if (n < 0x100000000) return val(T_INT32, this.data(u32(n), 4))
    const b = Buffer.alloc(8)
    b.writeBigUInt64LE(BigInt(n))
    return val(T_INT64, this.data(b, 4))
  }

  /** Slots 1..n (index 0 of `slots` is slot 1); trailing nulls dropped. apk
   * tags the arrays it writes through an object slot as objects too. */
  obj(slots: number[], type = T_OBJECT): number {
    let n = slots.length
    while (n > 0 && slots[n - 1] === NULL) n--
    if (n === 0) return NULL
    const b = Buffer.alloc(4 * (n + 1))
    b.writeUInt32LE(n + 1, 0)
    for (let i = 0; i < n; i++) b.writeUInt32LE(slots[i]!, 4 * (i + 1))
    return val(type, this.data(b, 4))
  }

  setRoot(v: number): void {
    this.buf.writeUInt32LE(v, 4)
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.len)
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}
function u16(n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16LE(n)
  return b
}

/** A block: u32 header, payload, zeros to the next multiple of 8. */
function block(type: number, payload: Buffer[]): Buffer {
  const len = payload.reduce((s, p) => s + p.length, 0)
  if (4 + len > 0x3fffffff) throw new Error(`block of ${len} bytes needs apk's extended header, not supported`)
  const raw = 4 + len
  return Buffer.concat([u32(((type << 30) | raw) >>> 0), ...payload, Buffer.alloc((8 - (raw % 8)) % 8)])
}

// ---- input ---------------------------------------------------------------------
export interface PackageSpec {
  /** name, version, description, arch, license, origin, maintainer, url; empty = unset. */
  info: Partial<Record<(typeof STRING_INFO)[number], string>>
  /** Dependency names (apk's "name" or "name>=ver" items). */
  depends: string[]
  /** The installed tree, staged like OpenWrt's IDIR (modes as they should install). */
  files: string
  scripts: Partial<Record<ScriptType, Buffer>>
  /** SOURCE_DATE_EPOCH: every file's mtime. */
  epoch: number
  /** Private key (PEM) to sign with; unsigned when absent. */
  signKey?: KeyObject
}

interface Entry {
  name: string
  mode: number
  data: Buffer
}

/** Directories (relative, "" = root) and their regular files, in apk's order (strcmp). */
function scan(root: string): Array<{ dir: string; mode: number; files: Entry[] }> {
  const dirs: string[] = []
  const walk = (rel: string) => {
    for (const e of readdirSync(join(root, rel)).sort(byteOrder)) {
      const p = rel ? `${rel}/${e}` : e
      if (lstatSync(join(root, p)).isDirectory()) {
        dirs.push(p)
        walk(p)
      }
    }
  }
  walk('')
  dirs.sort(byteOrder)
  return ['', ...dirs].map((dir) => {
    const files: Entry[] = []
    for (const e of readdirSync(join(root, dir)).sort(byteOrder)) {
      const p = join(root, dir, e)
      const st = lstatSync(p)
      if (st.isDirectory()) continue
      if (!st.isFile()) throw new Error(`${p}: only regular files and directories can be packaged`)
      files.push({ name: e, mode: st.mode & 0o7777, data: readFileSync(p) })
    }
    return { dir, mode: lstatSync(join(root, dir)).mode & 0o7777, files }
  })
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/** The public key's id as apk computes it: SHA-512 of its DER form, first 16 bytes. */
function keyId(privateKey: KeyObject): Buffer {
  const key = createPublicKey(privateKey)
  let der: Buffer
  if (key.asymmetricKeyType === 'rsa') {
    der = key.export({ type: 'pkcs1', format: 'der' }) as Buffer
  } else if (key.asymmetricKeyType === 'ec') {
    // i2d_PublicKey of an EC key: the uncompressed point, the tail of the SPKI.
    const jwk = key.export({ format: 'jwk' })
    der = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])
  } else {
    throw new Error(`${key.asymmetricKeyType} keys are not supported for signing (RSA or EC)`)
  }
  return createHash('sha512').update(der).digest().subarray(0, 16)
}

/** Build the package; returns the .apk bytes. */
export function writeApk(spec: PackageSpec): Buffer {
  const adb = new Adb()
  const info: number[] = new Array<number>(INFO_MAX).fill(NULL)
  // mkpkg's order: the info fields by slot, then the tree, then sizes/hashes.
  for (const f of STRING_INFO) info[slot(f) - 1] = adb.blob(spec.info[f] ?? null)
  const deps = [...new Set(spec.depends)].sort(byteOrder).map((d) => {
    const m = /^([^<>=~]+)(?:(>=|<=|=|<|>|~)(.+))?$/.exec(d)
    if (!m) throw new Error(`dependency ${JSON.stringify(d)}`)
    if (m[2]) throw new Error(`dependency ${JSON.stringify(d)}: versioned dependencies are not needed here`)
    return adb.obj([adb.blob(m[1]!)])
  })
  info[slot('depends') - 1] = adb.obj(deps)

  let installed = 0
  const tree = scan(spec.files)
  const paths = tree.map(({ dir, mode, files }) => {
    const fileVals = files.map((f) => {
      const name = adb.blob(f.name)
      const hash = adb.blob(createHash('sha256').update(f.data).digest())
      const mtime = adb.int(spec.epoch)
      const size = adb.int(f.data.length)
      const acl = adb.obj([adb.int(f.mode), adb.blob('root'), adb.blob('root')])
      installed += f.data.length
      return adb.obj([name, acl, size, mtime, hash])
    })
    const name = adb.blob(dir)
    const acl = adb.obj([adb.int(mode), adb.blob('root'), adb.blob('root')])
    return adb.obj([name, acl, adb.obj(fileVals)])
  })
  info[slot('installed-size') - 1] = adb.int(installed || 1)
  const hashesVal = adb.blob(Buffer.alloc(20), false)
  info[slot('hashes') - 1] = hashesVal
  const infoVal = adb.obj(info)
  const pathsVal = adb.obj(paths)
  const scripts = SCRIPT_TYPES.map((t) => adb.blob(spec.scripts[t] ?? null))
  adb.setRoot(adb.obj([infoVal, pathsVal, adb.obj(scripts)]))

  // The package's unique id: SHA-256 of the ADB with the id zeroed, 20 bytes.
  const bytes = adb.bytes()
  const idOff = (hashesVal & 0x0fffffff) + 1
  createHash('sha256').update(bytes).digest().copy(bytes, idOff, 0, 20)

  const out: Buffer[] = [Buffer.from('ADB.'), u32(SCHEMA_PACKAGE), block(BLOCK_ADB, [bytes])]
  if (spec.signKey) {
    const head = Buffer.concat([Buffer.from([0, DIGEST_SHA512]), keyId(spec.signKey)])
    const md = createHash('sha512').update(bytes).digest()
    const sig = sign('sha512', Buffer.concat([u32(SCHEMA_PACKAGE), head, md]), spec.signKey)
    out.push(block(BLOCK_SIG, [head, sig]))
  }
  tree.forEach(({ files }, i) =>
    files.forEach((f, j) => {
      if (f.data.length > 0) out.push(block(BLOCK_DATA, [u32(i + 1), u32(j + 1), f.data]))
    }),
  )
  return Buffer.concat([
    Buffer.from('ADBd'),
    deflateRawSync(Buffer.concat(out), { level: 9, windowBits: 15, memLevel: 8 }),
  ])
}

// ---- command line (mkpkg's options) ---------------------------------------------------
function main(argv: string[]): void {
  const spec: PackageSpec = { info: {}, depends: [], files: '', scripts: {}, epoch: 0 }
  let output = ''
  const sde = process.env.SOURCE_DATE_EPOCH
  if (!sde || !/^\d+$/.test(sde)) throw new Error("SOURCE_DATE_EPOCH must be set to the files' time stamp")
  spec.epoch = Number(sde)
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i]!
    const arg = argv[++i]
    if (arg === undefined) throw new Error(`${opt} needs a value`)
    const colon = arg.indexOf(':')
    if (opt === '--files') spec.files = arg
    else if (opt === '--output') output = arg
    else if (opt === '--sign-key') spec.signKey = createPrivateKey(readFileSync(arg))
    else if (opt === '--info' && colon > 0) {
      const k = arg.slice(0, colon)
      const v = arg.slice(colon + 1)
      if (k === 'depends') spec.depends = v.split(/\s+/).filter(Boolean)
      else if ((STRING_INFO as readonly string[]).includes(k)) spec.info[k as (typeof STRING_INFO)[number]] = v
      else throw new Error(`--info ${k}: not a field this writer sets (${[...STRING_INFO, 'depends'].join(', ')})`)
    } else if (opt === '--script' && colon > 0) {
      const k = arg.slice(0, colon)
      if (!(SCRIPT_TYPES as readonly string[]).includes(k))
        throw new Error(`--script ${k}: not one of ${SCRIPT_TYPES.join(', ')}`)
      spec.scripts[k as ScriptType] = readFileSync(arg.slice(colon + 1))
    } else throw new Error(`unknown option ${opt} ${arg}`)
  }
  if (!spec.files || !output || !spec.info.name || !spec.info.version) {
    throw new Error(
      'usage: apk.mjs --files DIR --output FILE --info name:N --info version:V [--info KEY:VALUE]... [--script TYPE:FILE]... [--sign-key KEY.pem]',
    )
  }
  writeFileSync(`${output}.tmp`, writeApk(spec))
  renameSync(`${output}.tmp`, output)
}

if (process.argv[1] && /apk\.(mjs|ts)$/.test(process.argv[1])) {
  try {
    main(process.argv.slice(2))
  } catch (e) {
    process.stderr.write(`apk.mjs: error: ${(e as Error).message}\n`)
    process.exit(1)
  }
}
