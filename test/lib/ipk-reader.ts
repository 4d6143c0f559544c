// A strict reader of OpenWrt .ipk packages, as opkg (opkg-lede) reads them
// and OpenWrt's scripts/ipkg-build writes them. It rejects every deviation
// listed in shared/reference/openwrt-conventions.md §1 with an IpkError whose
// `code` names the rule, so tests can tell one rejection from another.
//
//   outer file   gzip'd tar (an `ar` archive is rejected) of exactly
//                ./debian-binary ("2.0\n"), ./data.tar.gz, ./control.tar.gz,
//                in that order
//   every tar    ustar or GNU headers with valid checksums; no PAX headers
//                (typeflag x/g), no device/FIFO/sparse entries, owner and
//                group 0, relative "./" names without "..", no duplicates,
//                two zero blocks at the end
//   control.tar  flat: ./control (+ conffiles, maintainer scripts)
//   control      known fields in OpenWrt's order, Package/Version/
//                Architecture/Installed-Size present and well-formed,
//                Installed-Size = bytes of the uncompressed data tar,
//                Architecture in the allowed list
//   conffiles    absolute paths of regular files present in data.tar
//   scripts      shebang and run bit

import { gunzipSync } from 'node:zlib'

export class IpkError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`)
    this.name = 'IpkError'
  }
}

function fail(code: string, message: string): never {
  throw new IpkError(code, message)
}

// ---------------------------------------------------------------------------
// tar

export type TarType = 'file' | 'dir' | 'symlink' | 'hardlink'

export interface TarEntry {
  /** Full name as stored (after GNU long-name / ustar prefix handling), e.g. "./usr/bin/ugate". */
  name: string
  type: TarType
  /** Permission bits (mode & 0o7777). */
  mode: number
  uid: number
  gid: number
  uname: string
  gname: string
  mtime: number
  size: number
  linkname: string
  data: Buffer
  /** Header format of this entry. */
  format: 'gnu' | 'ustar'
}

const BLOCK = 512

function cstr(b: Buffer, off: number, len: number): string {
  const field = b.subarray(off, off + len)
  const end = field.indexOf(0)
  return field.subarray(0, end < 0 ? len : end).toString('latin1')
}

/** A numeric header field: octal ASCII (NUL/space terminated) or GNU base-256. */
function num(b: Buffer, off: number, len: number, what: string, where: string): number {
  const field = b.subarray(off, off + len)
  if (field[0]! & 0x80) {
    if (field[0] !== 0x80) fail('bad-number', `${where}: ${what} is a negative base-256 number`)
    let v = 0
    for (let i = 1; i < len; i++) v = v * 256 + field[i]!
    if (!Number.isSafeInteger(v)) fail('bad-number', `${where}: ${what} is too large`)
    return v
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '')
  if (text === '') return 0
  if (!/^[0-7]+$/.test(text)) fail('bad-number', `${where}: ${what} field ${JSON.stringify(text)} is not octal`)
  return parseInt(text, 8)
}

function isZeroBlock(b: Buffer, off: number): boolean {
  for (let i = off; i < off + BLOCK; i++) if (b[i] !== 0) return false
  return true
}

/** Parse a tar archive strictly (see the rules at the top of this file). */
export function parseTar(buf: Buffer, what: string): TarEntry[] {
  if (buf.length % BLOCK !== 0) fail('tar-size', `${what}: ${buf.length} bytes is not a multiple of 512`)
  const entries: TarEntry[] = []
  const seen = new Set<string>()
  let off = 0
  let longName: string | null = null
  let longLink: string | null = null
  for (;;) {
    if (off + BLOCK > buf.length) fail('tar-truncated', `${what}: no end-of-archive blocks`)
    if (isZeroBlock(buf, off)) {
      if (off + 2 * BLOCK > buf.length || !isZeroBlock(buf, off + BLOCK)) {
        fail('tar-truncated', `${what}: end of archive is not two zero blocks`)
      }
      if (longName !== null || longLink !== null) fail('tar-truncated', `${what}: GNU long name without its entry`)
      // GNU tar pads to its record size with zeros; anything else after the end is junk.
      for (let i = off + 2 * BLOCK; i < buf.length; i++) {
        if (buf[i] !== 0) fail('tar-trailing-data', `${what}: data after the end-of-archive blocks`)
      }
      return entries
    }
    const h = buf.subarray(off, off + BLOCK)
    const where = `${what} @${off}`

    // checksum: sum of the header with the checksum field read as spaces
    const stored = num(h, 148, 8, 'checksum', where)
    let sum = 0
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!
    if (sum !== stored) fail('bad-checksum', `${where}: header checksum ${stored} but the header sums to ${sum}`)

    const magic = h.subarray(257, 265).toString('latin1')
    let format: 'gnu' | 'ustar'
    if (magic === 'ustar  \0') format = 'gnu'
    else if (magic === 'ustar\u000000') format = 'ustar'
    else
      fail(
        'bad-magic',
        `${where}: magic ${JSON.stringify(magic)} is neither GNU ("ustar  ") nor ustar ("ustar\\0" "00")`,
      )

    const typeflag = String.fromCharCode(h[156]!)
    const size = num(h, 124, 12, 'size', where)
    const dataStart = off + BLOCK
    const dataEnd = dataStart + size
    const next = dataStart + Math.ceil(size / BLOCK) * BLOCK
    if (next > buf.length) fail('tar-truncated', `${where}: entry data runs past the end of the archive`)
    const data = buf.subarray(dataStart, dataEnd)

    if (typeflag === 'x' || typeflag === 'g') {
      fail('pax-header', `${where}: PAX header (typeflag ${typeflag}): opkg says "Unknown typeflag"`)
    }
    if (typeflag === 'L' || typeflag === 'K') {
      if (format !== 'gnu') fail('bad-typeflag', `${where}: GNU long-name entry in a ustar header`)
      const text = cstr(data, 0, data.length)
      if (typeflag === 'L') longName = text
      else longLink = text
      off = next
      continue
    }

    let type: TarType
    switch (typeflag) {
      case '0':
      case '\0':
        type = 'file'
        break
      case '5':
        type = 'dir'
        break
      case '2':
        type = 'symlink'
        break
      case '1':
        type = 'hardlink'
        break
      default:
        fail(
          'bad-typeflag',
          `${where}: typeflag ${JSON.stringify(typeflag)} (only files, directories and links belong in a package)`,
        )
    }

    let name = cstr(h, 0, 100)
    if (format === 'ustar') {
      const prefix = cstr(h, 345, 155)
      if (prefix) name = `${prefix}/${name}`
    }
    if (longName !== null) name = longName
    let linkname = cstr(h, 157, 100)
    if (longLink !== null) linkname = longLink
    longName = longLink = null

    if (type !== 'file' && size !== 0) fail('bad-size', `${where}: ${name}: a ${type} with ${size} bytes of data`)
    checkName(name, where)
    const key = name.replace(/\/$/, '')
    if (seen.has(key)) fail('duplicate-entry', `${where}: ${name} appears twice`)
    seen.add(key)
    if (type === 'dir' && !name.endsWith('/')) fail('bad-name', `${where}: directory ${name} does not end with "/"`)
    if (type !== 'dir' && name.endsWith('/')) fail('bad-name', `${where}: ${type} ${name} ends with "/"`)

    const uid = num(h, 108, 8, 'uid', where)
    const gid = num(h, 116, 8, 'gid', where)
    const uname = cstr(h, 265, 32)
    const gname = cstr(h, 297, 32)
    if (uid !== 0 || gid !== 0) fail('non-root-owner', `${where}: ${name} is owned by ${uid}:${gid}, not 0:0`)
    if ((uname !== '' && uname !== 'root') || (gname !== '' && gname !== 'root')) {
      fail('non-root-owner', `${where}: ${name} names owner ${uname}:${gname}, not root`)
    }

    entries.push({
      name,
      type,
      mode: num(h, 100, 8, 'mode', where) & 0o7777,
      uid,
      gid,
      uname,
      gname,
      mtime: num(h, 136, 12, 'mtime', where),
      size,
      linkname,
      data: Buffer.from(data),
      format,
    })
    off = next
  }
}

function checkName(name: string, where: string): void {
  if (name === './') return
  if (!name.startsWith('./')) fail('bad-name', `${where}: ${JSON.stringify(name)} does not start with "./"`)
  const parts = name.slice(2).replace(/\/$/, '').split('/')
  if (parts.some((p) => p === '' || p === '.' || p === '..')) {
    fail('unsafe-path', `${where}: ${JSON.stringify(name)} has an empty, "." or ".." component`)
  }
}

// ---------------------------------------------------------------------------
// gzip

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b])

export interface GzipHeader {
  method: number
  flags: number
  mtime: number
  /** FNAME present (gzip without -n stores the file name). */
  hasName: boolean
}

export function gzipHeader(buf: Buffer): GzipHeader {
  if (buf.length < 10 || !buf.subarray(0, 2).equals(GZIP_MAGIC)) fail('not-gzip', 'no gzip magic')
  return { method: buf[2]!, flags: buf[3]!, mtime: buf.readUInt32LE(4), hasName: (buf[3]! & 0x08) !== 0 }
}

function gunzip(buf: Buffer, what: string): Buffer {
  if (buf.subarray(0, 8).toString('latin1') === '!<arch>\n') {
    fail('ar-format', `${what} is an ar archive: opkg says "Malformed package file"`)
  }
  if (buf.length < 18 || !buf.subarray(0, 2).equals(GZIP_MAGIC)) fail('not-gzip', `${what} is not gzip'd`)
  if (buf[2] !== 8) fail('not-gzip', `${what}: gzip method ${buf[2]} is not deflate`)
  try {
    return gunzipSync(buf)
  } catch (e) {
    fail('not-gzip', `${what}: ${(e as Error).message}`)
  }
}

// ---------------------------------------------------------------------------
// control

/** Control fields in OpenWrt's order (include/package-ipkg.mk, conventions §1). */
export const CONTROL_FIELDS = [
  'Package',
  'Version',
  'Depends',
  'Conflicts',
  'Provides',
  'Source',
  'SourceName',
  'License',
  'LicenseFiles',
  'Section',
  'URL',
  'Maintainer',
  'Architecture',
  'Installed-Size',
  'Description',
] as const

export const REQUIRED_FIELDS = ['Package', 'Version', 'Architecture', 'Installed-Size'] as const

/** The package archs ugate ships, plus "all" for arch-free packages. */
export const DEFAULT_ARCHS = [
  'x86_64',
  'aarch64_generic',
  'arm_cortex-a7_neon-vfpv4',
  'mipsel_24kc',
  'mips_24kc',
  'all',
] as const

export const PACKAGE_NAME_RE = /^[a-z0-9][a-z0-9.+-]*$/

/** opkg/Debian version: [epoch:]upstream[-revision]; upstream starts with a digit. */
export function checkVersion(v: string): void {
  const m = /^(?:(\d+):)?(.+)$/.exec(v)
  if (!m) fail('bad-version', `Version ${JSON.stringify(v)}`)
  const rest = m[2]!
  const dash = rest.lastIndexOf('-')
  const upstream = dash < 0 ? rest : rest.slice(0, dash)
  const revision = dash < 0 ? null : rest.slice(dash + 1)
  if (!/^[0-9][A-Za-z0-9.+~-]*$/.test(upstream) || (dash < 0 && upstream.includes('-'))) {
    fail(
      'bad-version',
      `Version ${JSON.stringify(v)}: upstream part ${JSON.stringify(upstream)} must start with a digit and hold only [A-Za-z0-9.+~-]`,
    )
  }
  if (revision !== null && !/^[A-Za-z0-9.+~]+$/.test(revision)) {
    fail('bad-version', `Version ${JSON.stringify(v)}: revision ${JSON.stringify(revision)} must be [A-Za-z0-9.+~]+`)
  }
}

const DEPENDS_ITEM_RE = /^[a-z0-9][a-z0-9.+-]*(?: \((?:<<|<=|=|>=|>>|<|>) [^()\s]+\))?$/

export interface ControlFile {
  /** Fields in file order. */
  fields: Array<[string, string]>
  get(name: string): string | undefined
}

export function parseControl(text: string, archs: readonly string[] = DEFAULT_ARCHS): ControlFile {
  if (!text.endsWith('\n')) fail('control-syntax', 'control does not end with a newline')
  const lines = text.slice(0, -1).split('\n')
  const fields: Array<[string, string]> = []
  for (const [i, line] of lines.entries()) {
    if (line.startsWith(' ')) {
      if (fields.length === 0) fail('control-syntax', `control line ${i + 1}: continuation before any field`)
      if (line.trim() === '') fail('control-syntax', `control line ${i + 1}: blank continuation line`)
      fields[fields.length - 1]![1] += `\n${line.slice(1)}`
      continue
    }
    const m = /^([A-Za-z][A-Za-z0-9-]*): ?(.*)$/.exec(line)
    if (!m) fail('control-syntax', `control line ${i + 1}: ${JSON.stringify(line)} is not "Field: value"`)
    fields.push([m[1]!, m[2]!])
  }
  const names = fields.map(([n]) => n)
  let last = -1
  for (const n of names) {
    const idx = (CONTROL_FIELDS as readonly string[]).indexOf(n)
    if (idx < 0) fail('unknown-field', `control field ${n} is not one OpenWrt writes (${CONTROL_FIELDS.join(', ')})`)
    if (idx === last) fail('duplicate-field', `control field ${n} appears twice`)
    if (idx < last)
      fail(
        'field-order',
        `control field ${n} comes after ${CONTROL_FIELDS[last]} (OpenWrt order: ${CONTROL_FIELDS.join(', ')})`,
      )
    last = idx
  }
  const get = (name: string) => fields.find(([n]) => n === name)?.[1]
  for (const r of REQUIRED_FIELDS) {
    if (get(r) === undefined) fail('missing-field', `control has no ${r}`)
  }
  for (const [n, v] of fields) {
    if (n !== 'Description' && v.includes('\n')) fail('control-syntax', `control field ${n} spans lines`)
    if (v.trim() === '' || v !== v.trim())
      fail('control-syntax', `control field ${n} is empty or has surrounding blanks`)
  }
  const pkg = get('Package')!
  if (!PACKAGE_NAME_RE.test(pkg)) fail('bad-package', `Package ${JSON.stringify(pkg)} is not [a-z0-9][a-z0-9.+-]*`)
  checkVersion(get('Version')!)
  const arch = get('Architecture')!
  if (!archs.includes(arch)) fail('bad-arch', `Architecture ${JSON.stringify(arch)} is not one of ${archs.join(', ')}`)
  if (!/^(0|[1-9][0-9]*)$/.test(get('Installed-Size')!))
    fail('bad-installed-size', `Installed-Size ${JSON.stringify(get('Installed-Size'))} is not a byte count`)
  const deps = get('Depends')
  if (deps !== undefined) {
    for (const d of deps.split(',').map((x) => x.trim())) {
      if (!DEPENDS_ITEM_RE.test(d)) fail('bad-depends', `Depends item ${JSON.stringify(d)}`)
    }
  }
  return { fields, get }
}

// ---------------------------------------------------------------------------
// the package

/** Files opkg runs as `/bin/sh -c "<path> <args>"`: shebang and run bit. */
export const MAINTAINER_SCRIPTS = ['preinst', 'postinst', 'prerm', 'postrm'] as const
/** Sourced by OpenWrt's default_postinst/default_prerm: run bit (ipkg-build chmods them 0755). */
export const SOURCED_SCRIPTS = ['postinst-pkg', 'prerm-pkg'] as const
export const CONTROL_MEMBERS = ['control', 'conffiles', ...MAINTAINER_SCRIPTS, ...SOURCED_SCRIPTS] as const

export const OUTER_MEMBERS = ['./debian-binary', './data.tar.gz', './control.tar.gz'] as const

export interface Ipk {
  outer: TarEntry[]
  control: ControlFile
  /** control.tar entries by bare name ("control", "postinst", ...). */
  controlFiles: Map<string, TarEntry>
  data: TarEntry[]
  /** Bytes of the uncompressed data tar. */
  dataTarSize: number
  conffiles: string[]
  /** The three gzip streams' headers: outer, data, control. */
  gzip: { outer: GzipHeader; data: GzipHeader; control: GzipHeader }
}

export interface ReadOptions {
  archs?: readonly string[]
}

/** Read and check an .ipk; throws IpkError on the first deviation. */
export function readIpk(file: Buffer, opts: ReadOptions = {}): Ipk {
  const outerTar = gunzip(file, 'package')
  const outer = parseTar(outerTar, 'package')
  const names = outer.map((e) => e.name)
  const sameSet = names.length === OUTER_MEMBERS.length && OUTER_MEMBERS.every((m) => names.includes(m))
  if (!sameSet)
    fail('member-names', `package members are ${JSON.stringify(names)}, not ${JSON.stringify(OUTER_MEMBERS)}`)
  if (names.some((n, i) => n !== OUTER_MEMBERS[i])) {
    fail('member-order', `package members are in the order ${names.join(', ')}, not ${OUTER_MEMBERS.join(', ')}`)
  }
  for (const e of outer) if (e.type !== 'file') fail('member-names', `package member ${e.name} is a ${e.type}`)
  const [debianBinary, dataGz, controlGz] = outer as [TarEntry, TarEntry, TarEntry]
  if (debianBinary.data.toString('latin1') !== '2.0\n') {
    fail('debian-binary', `debian-binary holds ${JSON.stringify(debianBinary.data.toString('latin1'))}, not "2.0\\n"`)
  }

  const controlTar = gunzip(controlGz.data, 'control.tar.gz')
  const controlEntries = parseTar(controlTar, 'control.tar.gz')
  const controlFiles = new Map<string, TarEntry>()
  for (const e of controlEntries) {
    if (e.name === './' && e.type === 'dir') continue
    const bare = e.name.slice(2)
    if (e.type !== 'file' || bare.includes('/'))
      fail('control-not-flat', `control.tar.gz holds ${e.name} (${e.type}); it must be flat files`)
    if (!(CONTROL_MEMBERS as readonly string[]).includes(bare)) {
      fail('unknown-control-file', `control.tar.gz holds ${e.name} (known: ${CONTROL_MEMBERS.join(', ')})`)
    }
    controlFiles.set(bare, e)
  }
  const controlEntry = controlFiles.get('control')
  if (!controlEntry) fail('missing-control', 'control.tar.gz has no ./control')
  const control = parseControl(controlEntry.data.toString('utf8'), opts.archs ?? DEFAULT_ARCHS)

  const dataTar = gunzip(dataGz.data, 'data.tar.gz')
  const data = parseTar(dataTar, 'data.tar.gz')
  const installed = Number(control.get('Installed-Size'))
  if (installed !== dataTar.length) {
    fail('installed-size', `Installed-Size ${installed} but the uncompressed data tar has ${dataTar.length} bytes`)
  }

  for (const s of MAINTAINER_SCRIPTS) {
    const e = controlFiles.get(s)
    if (!e) continue
    if (!e.data.subarray(0, 2).equals(Buffer.from('#!'))) fail('script-no-shebang', `${s} does not start with "#!"`)
    if ((e.mode & 0o111) !== 0o111)
      fail('script-not-executable', `${s} has mode ${e.mode.toString(8)}, not executable by all`)
  }
  for (const s of SOURCED_SCRIPTS) {
    const e = controlFiles.get(s)
    if (e && (e.mode & 0o111) !== 0o111)
      fail('script-not-executable', `${s} has mode ${e.mode.toString(8)}, not executable by all`)
  }

  const conffiles: string[] = []
  const cf = controlFiles.get('conffiles')
  if (cf) {
    const text = cf.data.toString('utf8')
    if (text !== '' && !text.endsWith('\n')) fail('conffiles-syntax', 'conffiles does not end with a newline')
    for (const line of text.split('\n').slice(0, -1)) {
      if (!line.startsWith('/'))
        fail('conffile-not-absolute', `conffile ${JSON.stringify(line)} is not an absolute path`)
      const inData = data.find((e) => e.name === `.${line}`)
      if (!inData) fail('conffile-missing', `conffile ${line} is not in data.tar.gz`)
      if (inData.type !== 'file') fail('conffile-missing', `conffile ${line} is a ${inData.type}, not a file`)
      conffiles.push(line)
    }
  }

  return {
    outer,
    control,
    controlFiles,
    data,
    dataTarSize: dataTar.length,
    conffiles,
    gzip: { outer: gzipHeader(file), data: gzipHeader(dataGz.data), control: gzipHeader(controlGz.data) },
  }
}

// ---------------------------------------------------------------------------
// writing, for tests that build good and broken packages

export interface TarSpec {
  name: string
  type?: TarType | 'pax' | 'raw'
  /** Raw typeflag character, for type 'raw'. */
  typeflag?: string
  mode?: number
  uid?: number
  gid?: number
  uname?: string
  gname?: string
  mtime?: number
  data?: Buffer | string
  linkname?: string
  /** 'gnu' (default) or 'ustar' magic, or any 8-byte string. */
  magic?: 'gnu' | 'ustar' | string
  /** Corrupt the checksum. */
  badChecksum?: boolean
}

function octal(n: number, len: number): string {
  return n.toString(8).padStart(len - 1, '0') + '\0'
}

/** One tar header (+ data) as GNU tar --format=gnu writes it, with knobs to break it. */
export function tarEntry(s: TarSpec): Buffer {
  const data = typeof s.data === 'string' ? Buffer.from(s.data) : (s.data ?? Buffer.alloc(0))
  const h = Buffer.alloc(BLOCK)
  h.write(s.name, 0, 100, 'latin1')
  const type = s.type ?? 'file'
  h.write(octal(s.mode ?? (type === 'dir' ? 0o755 : 0o644), 8), 100, 'latin1')
  h.write(octal(s.uid ?? 0, 8), 108, 'latin1')
  h.write(octal(s.gid ?? 0, 8), 116, 'latin1')
  h.write(octal(data.length, 12), 124, 'latin1')
  h.write(octal(s.mtime ?? 0, 12), 136, 'latin1')
  const flag = { file: '0', dir: '5', symlink: '2', hardlink: '1', pax: 'x', raw: s.typeflag ?? '0' }[type]
  h.write(flag, 156, 'latin1')
  h.write(s.linkname ?? '', 157, 100, 'latin1')
  const magic =
    s.magic === undefined || s.magic === 'gnu' ? 'ustar  \0' : s.magic === 'ustar' ? 'ustar\u000000' : s.magic
  h.write(magic, 257, 8, 'latin1')
  h.write(s.uname ?? '', 265, 32, 'latin1')
  h.write(s.gname ?? '', 297, 32, 'latin1')
  h.fill(0x20, 148, 156)
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += h[i]!
  if (s.badChecksum) sum += 1
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1')
  const pad = Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)
  return Buffer.concat([h, data, pad])
}

/** A whole tar: entries + two zero blocks. */
export function tarArchive(entries: TarSpec[]): Buffer {
  return Buffer.concat([...entries.map(tarEntry), Buffer.alloc(2 * BLOCK)])
}
