// The strict .ipk reader (test/lib/ipk-reader.ts) on a good package and on
// packages broken one rule at a time (openwrt-conventions.md §1): each must
// be rejected with the code of that rule. Packages are built here, in
// memory, and with the system's GNU tar for a cross-check.

import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import type { Test } from 'tap'
import { IpkError, checkVersion, readIpk, tarArchive } from '../lib/ipk-reader.js'
import type { TarSpec } from '../lib/ipk-reader.js'
import { tempDir } from '../lib/temp.js'

const POSTINST = `#!/bin/sh
[ "\${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
`

const CONFIG = "config ugate 'main'\n\toption enabled '1'\n"

function dataEntries(): TarSpec[] {
  return [
    { name: './', type: 'dir' },
    { name: './etc/', type: 'dir' },
    { name: './etc/config/', type: 'dir' },
    { name: './etc/config/ugate', data: CONFIG, mode: 0o600 },
    { name: './usr/', type: 'dir' },
    { name: './usr/bin/', type: 'dir' },
    { name: './usr/bin/ugate', data: '\x7fELF...', mode: 0o755 },
  ]
}

interface Parts {
  /** Control text; INSTALLED is replaced by the data tar's size. */
  control?: string
  data?: TarSpec[]
  /** Extra or replacement control.tar entries (by name). */
  controlFiles?: TarSpec[]
  dropControl?: string[]
  outer?: (members: { debianBinary: TarSpec; data: TarSpec; control: TarSpec }) => TarSpec[]
  debianBinary?: string
}

const CONTROL = `Package: ugate
Version: 0.1.0-r1
License: Apache-2.0
Section: net
Architecture: mipsel_24kc
Installed-Size: INSTALLED
Description: Tiny TCP gateway
 second line of the description.
`

function build(p: Parts = {}): Buffer {
  const dataTar = tarArchive(p.data ?? dataEntries())
  const control = (p.control ?? CONTROL).replace('INSTALLED', String(dataTar.length))
  let cfiles: TarSpec[] = [
    { name: './', type: 'dir' },
    { name: './conffiles', data: '/etc/config/ugate\n' },
    { name: './control', data: control },
    { name: './postinst', data: POSTINST, mode: 0o755 },
    { name: './prerm', data: POSTINST.replace(/postinst/g, 'prerm'), mode: 0o755 },
  ]
  for (const extra of p.controlFiles ?? []) {
    cfiles = cfiles.filter((c) => c.name !== extra.name)
    cfiles.push(extra)
  }
  cfiles = cfiles.filter((c) => !(p.dropControl ?? []).includes(c.name))
  const members = {
    debianBinary: { name: './debian-binary', data: p.debianBinary ?? '2.0\n' },
    data: { name: './data.tar.gz', data: gzipSync(dataTar) },
    control: { name: './control.tar.gz', data: gzipSync(tarArchive(cfiles)) },
  }
  const outer = p.outer ? p.outer(members) : [members.debianBinary, members.data, members.control]
  return gzipSync(tarArchive(outer))
}

function rejects(t: Test, buf: Buffer, code: string, what: string): void {
  try {
    readIpk(buf)
    t.fail(`${what}: accepted, expected ${code}`)
  } catch (e) {
    if (!(e instanceof IpkError)) throw e
    t.equal(e.code, code, `${what}: rejected with ${code}`, { message: e.message })
  }
}

t.test('a well-formed package is read', async (t) => {
  const ipk = readIpk(build())
  t.equal(ipk.control.get('Package'), 'ugate')
  t.equal(ipk.control.get('Version'), '0.1.0-r1')
  t.equal(ipk.control.get('Description'), 'Tiny TCP gateway\nsecond line of the description.')
  t.same(ipk.conffiles, ['/etc/config/ugate'])
  t.same(
    ipk.data.map((e) => [e.name, e.type, e.mode.toString(8)]),
    [
      ['./', 'dir', '755'],
      ['./etc/', 'dir', '755'],
      ['./etc/config/', 'dir', '755'],
      ['./etc/config/ugate', 'file', '600'],
      ['./usr/', 'dir', '755'],
      ['./usr/bin/', 'dir', '755'],
      ['./usr/bin/ugate', 'file', '755'],
    ],
  )
  t.same([...ipk.controlFiles.keys()].sort(), ['conffiles', 'control', 'postinst', 'prerm'])
  t.equal(ipk.dataTarSize, Number(ipk.control.get('Installed-Size')))
})

t.test('GNU long names (typeflag L) are accepted', async (t) => {
  const long = `./www/luci-static/resources/view/ugate/${'x'.repeat(120)}.js`
  const data = [
    ...dataEntries(),
    { name: '././@LongLink', type: 'raw' as const, typeflag: 'L', data: `${long}\0` },
    { name: long.slice(0, 100), data: 'x' },
  ]
  const ipk = readIpk(build({ data }))
  t.ok(
    ipk.data.some((e) => e.name === long),
    'the long name is restored',
  )
})

t.test('container deviations are rejected', async (t) => {
  rejects(
    t,
    Buffer.from('!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n'),
    'ar-format',
    'an ar archive',
  )
  rejects(t, gzipSync(Buffer.from('hello')).subarray(0, 10), 'not-gzip', 'a truncated gzip stream')
  rejects(t, tarArchive([{ name: './debian-binary', data: '2.0\n' }]), 'not-gzip', 'a plain (uncompressed) tar')
  rejects(
    t,
    build({ outer: (m) => [m.debianBinary, m.control, m.data] }),
    'member-order',
    'control.tar.gz before data.tar.gz',
  )
  rejects(t, build({ outer: (m) => [m.data, m.debianBinary, m.control] }), 'member-order', 'debian-binary not first')
  rejects(t, build({ outer: (m) => [m.debianBinary, m.data] }), 'member-names', 'no control.tar.gz')
  rejects(
    t,
    build({ outer: (m) => [m.debianBinary, m.data, m.control, { name: './extra', data: 'x' }] }),
    'member-names',
    'an extra member',
  )
  rejects(
    t,
    build({ outer: (m) => [{ ...m.debianBinary, name: 'debian-binary' }, m.data, m.control] }),
    'bad-name',
    'member names without "./"',
  )
  rejects(t, build({ debianBinary: '2.1\n' }), 'debian-binary', 'debian-binary 2.1')
  rejects(t, build({ debianBinary: '2.0' }), 'debian-binary', 'debian-binary without a newline')
})

t.test('tar header deviations are rejected', async (t) => {
  const pax: TarSpec = { name: './PaxHeaders/ugate', type: 'pax', data: '30 mtime=1700000000.123456789\n' }
  rejects(t, build({ data: [...dataEntries(), pax] }), 'pax-header', 'a PAX header (x) in data.tar')
  rejects(
    t,
    build({ data: [...dataEntries(), { ...pax, type: 'raw', typeflag: 'g' }] }),
    'pax-header',
    'a PAX global header (g) in data.tar',
  )
  rejects(
    t,
    build({ outer: (m) => [{ ...pax, name: './PaxHeaders/x' }, m.debianBinary, m.data, m.control] }),
    'pax-header',
    'a PAX header in the outer tar',
  )
  const v7 = dataEntries().map((e) => ({ ...e, magic: '\0\0\0\0\0\0\0\0' }))
  rejects(t, build({ data: v7 }), 'bad-magic', 'old v7 headers (no magic)')
  rejects(
    t,
    build({ data: dataEntries().map((e) => ({ ...e, magic: 'ustar\u0000  ' })) }),
    'bad-magic',
    'a mixed-up magic',
  )
  const ustar = readIpk(build({ data: dataEntries().map((e) => ({ ...e, magic: 'ustar' })) }))
  t.equal(ustar.data[0]!.format, 'ustar', 'POSIX ustar headers are accepted')
  const bad = dataEntries()
  bad[3] = { ...bad[3]!, badChecksum: true }
  rejects(t, build({ data: bad }), 'bad-checksum', 'a wrong header checksum')
  rejects(
    t,
    build({
      data: [...dataEntries(), { name: './dev/', type: 'dir' }, { name: './dev/null', type: 'raw', typeflag: '3' }],
    }),
    'bad-typeflag',
    'a character device',
  )
  rejects(
    t,
    build({ data: [...dataEntries(), { name: './fifo', type: 'raw', typeflag: '6' }] }),
    'bad-typeflag',
    'a FIFO',
  )
  rejects(
    t,
    build({ data: [...dataEntries(), { name: './usr/bin/ugate', data: 'again', mode: 0o755 }] }),
    'duplicate-entry',
    'a duplicate entry',
  )
  rejects(t, build({ data: [...dataEntries(), { name: './../etc/passwd', data: 'x' }] }), 'unsafe-path', 'a ".." path')
  rejects(t, build({ data: [...dataEntries(), { name: '/etc/passwd', data: 'x' }] }), 'bad-name', 'an absolute path')
  const owned = dataEntries()
  owned[6] = { ...owned[6]!, uid: 1000, gid: 1000 }
  rejects(t, build({ data: owned }), 'non-root-owner', 'a file owned by 1000:1000')
  const named = dataEntries()
  named[6] = { ...named[6]!, uname: 'builder', gname: 'builder' }
  rejects(t, build({ data: named }), 'non-root-owner', 'a file owned by user name "builder"')
  const rootNamed = dataEntries().map((e) => ({ ...e, uname: 'root', gname: 'root' }))
  t.ok(readIpk(build({ data: rootNamed })), 'owner names "root" are accepted')

  // truncated: no end-of-archive blocks
  const dataTar = tarArchive(dataEntries())
  const cut = dataTar.subarray(0, dataTar.length - 1024)
  rejects(
    t,
    build({
      outer: (m) => [m.debianBinary, { ...m.data, data: gzipSync(cut) }, m.control],
      control: CONTROL.replace('INSTALLED', String(cut.length)),
    }),
    'tar-truncated',
    'a data tar without its end blocks',
  )
})

t.test('control.tar deviations are rejected', async (t) => {
  rejects(
    t,
    build({
      controlFiles: [
        { name: './CONTROL/', type: 'dir' },
        { name: './CONTROL/control', data: 'x' },
      ],
    }),
    'control-not-flat',
    'a subdirectory in control.tar',
  )
  rejects(t, build({ dropControl: ['./control'] }), 'missing-control', 'no ./control')
  rejects(
    t,
    build({ controlFiles: [{ name: './md5sums', data: 'x' }] }),
    'unknown-control-file',
    'an unknown control member',
  )
  rejects(
    t,
    build({ controlFiles: [{ name: './postinst', data: 'default_postinst $0 $@\n', mode: 0o755 }] }),
    'script-no-shebang',
    'postinst without a shebang',
  )
  rejects(
    t,
    build({ controlFiles: [{ name: './prerm', data: POSTINST, mode: 0o644 }] }),
    'script-not-executable',
    'prerm without the run bit',
  )
  rejects(
    t,
    build({ controlFiles: [{ name: './postrm', data: '#!/bin/sh\n', mode: 0o744 }] }),
    'script-not-executable',
    'postrm executable by the owner only',
  )
  rejects(
    t,
    build({ controlFiles: [{ name: './postinst-pkg', data: '#!/bin/sh\n', mode: 0o644 }] }),
    'script-not-executable',
    'postinst-pkg without the run bit',
  )
  rejects(
    t,
    build({ controlFiles: [{ name: './conffiles', data: 'etc/config/ugate\n' }] }),
    'conffile-not-absolute',
    'a relative conffile',
  )
  rejects(
    t,
    build({ controlFiles: [{ name: './conffiles', data: '/etc/config/other\n' }] }),
    'conffile-missing',
    'a conffile not in data.tar',
  )
  rejects(
    t,
    build({ controlFiles: [{ name: './conffiles', data: '/etc/config\n' }] }),
    'conffile-missing',
    'a conffile that is a directory',
  )
  t.ok(readIpk(build({ dropControl: ['./conffiles', './postinst', './prerm'] })), 'control alone is enough')
})

t.test('control field deviations are rejected', async (t) => {
  const swap = CONTROL.replace('Version: 0.1.0-r1\n', '').replace(
    'Architecture: mipsel_24kc\n',
    'Architecture: mipsel_24kc\nVersion: 0.1.0-r1\n',
  )
  rejects(t, build({ control: swap }), 'field-order', 'Version after Architecture')
  rejects(
    t,
    build({ control: CONTROL.replace('License: Apache-2.0\nSection: net\n', 'Section: net\nLicense: Apache-2.0\n') }),
    'field-order',
    'Section before License',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('Section: net\n', 'Section: net\nPriority: optional\n') }),
    'unknown-field',
    'a Priority field',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('Section: net\n', 'Section: net\nSection: utils\n') }),
    'duplicate-field',
    'Section twice',
  )
  rejects(t, build({ control: CONTROL.replace('Package: ugate\n', '') }), 'missing-field', 'no Package')
  rejects(t, build({ control: CONTROL.replace('Version: 0.1.0-r1\n', '') }), 'missing-field', 'no Version')
  rejects(t, build({ control: CONTROL.replace('Architecture: mipsel_24kc\n', '') }), 'missing-field', 'no Architecture')
  rejects(
    t,
    build({ control: CONTROL.replace('Installed-Size: INSTALLED\n', '') }),
    'missing-field',
    'no Installed-Size',
  )
  rejects(t, build({ control: CONTROL.replace('mipsel_24kc', 'mipsel') }), 'bad-arch', 'Architecture mipsel')
  rejects(
    t,
    build({ control: CONTROL.replace('mipsel_24kc', 'aarch64_cortex-a53') }),
    'bad-arch',
    'an arch ugate does not ship',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('Installed-Size: INSTALLED', 'Installed-Size: 1') }),
    'installed-size',
    'a wrong Installed-Size',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('Installed-Size: INSTALLED', 'Installed-Size: 10k') }),
    'bad-installed-size',
    'Installed-Size in kB',
  )
  rejects(t, build({ control: CONTROL.replace('0.1.0-r1', 'v0.1.0') }), 'bad-version', 'Version v0.1.0')
  rejects(
    t,
    build({ control: CONTROL.replace('Package: ugate', 'Package: UGate') }),
    'bad-package',
    'an upper-case package name',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('Package: ugate', 'Package: u_gate') }),
    'bad-package',
    'an underscore in the package name',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('Section: net\n', 'Section: net\nDepends: libc,, ugate\n') }),
    'field-order',
    'Depends after Section',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('Version: 0.1.0-r1\n', 'Version: 0.1.0-r1\nDepends: libc,, luci-base\n') }),
    'bad-depends',
    'an empty Depends item',
  )
  t.ok(
    readIpk(
      build({
        control: CONTROL.replace('Version: 0.1.0-r1\n', 'Version: 0.1.0-r1\nDepends: luci-base, ugate (>= 0.1.0)\n'),
      }),
    ),
    'Depends with a version constraint',
  )
  rejects(t, build({ control: CONTROL.slice(0, -1) }), 'control-syntax', 'control without a final newline')
  rejects(
    t,
    build({ control: CONTROL.replace('Section: net\n', 'Section: net\n\n') }),
    'control-syntax',
    'a blank line inside control',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('Section: net\n', 'Section net\n') }),
    'control-syntax',
    'a line without a colon',
  )
  rejects(
    t,
    build({ control: CONTROL.replace('License: Apache-2.0\n', 'License: Apache-2.0\n continued\n') }),
    'control-syntax',
    'a continuation of License',
  )
})

t.test('Version syntax', async (t) => {
  for (const v of ['0.1.0', '0.1.0-r1', '1:2.3-4', '2024.01.05~rc1-1', '1.0+git20240101-r3', '1.0-beta-r1']) {
    t.doesNotThrow(() => checkVersion(v), `${v} is a version`)
  }
  for (const v of ['', 'v1', '1.0-', '-1', '1 0', '1.0_1', 'a:1.0', '1.0-r 1', ':1.0']) {
    t.throws(() => checkVersion(v), { code: 'bad-version' }, `${JSON.stringify(v)} is not a version`)
  }
})

// The reader against GNU tar itself: ipkg-build's flags pass, PAX and v7 fail.
t.test('packages made by GNU tar', async (t) => {
  if (spawnSync('tar', ['--version']).status !== 0) {
    t.fail('GNU tar is needed for this test')
    return
  }
  const dir = tempDir(t, 'ipk-reader-')
  const sh = (cmd: string) => {
    const r = spawnSync('sh', ['-ec', cmd], { cwd: dir, encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`)
  }
  mkdirSync(join(dir, 'data/usr/bin'), { recursive: true })
  mkdirSync(join(dir, 'data/etc/config'), { recursive: true })
  writeFileSync(join(dir, 'data/usr/bin/ugate'), 'binary')
  chmodSync(join(dir, 'data/usr/bin/ugate'), 0o755)
  writeFileSync(join(dir, 'data/etc/config/ugate'), CONFIG)
  mkdirSync(join(dir, 'control'))
  writeFileSync(join(dir, 'control/postinst'), POSTINST)
  chmodSync(join(dir, 'control/postinst'), 0o755)
  writeFileSync(join(dir, 'control/conffiles'), '/etc/config/ugate\n')
  writeFileSync(join(dir, 'debian-binary'), '2.0\n')
  const make = (format: string, name: string) => {
    const tar = `tar --format=${format} --numeric-owner --owner=0 --group=0 --sort=name --mtime=@1700000000`
    sh(`${tar} -C data -cf data.tar . && gzip -n -c data.tar > data.tar.gz`)
    const size = readFileSync(join(dir, 'data.tar')).length
    writeFileSync(join(dir, 'control/control'), CONTROL.replace('INSTALLED', String(size)))
    sh(`${tar} -C control -cf - . | gzip -n > control.tar.gz`)
    sh(`${tar} -cf - ./debian-binary ./data.tar.gz ./control.tar.gz | gzip -n > ${name}`)
    return readFileSync(join(dir, name))
  }
  const gnu = readIpk(make('gnu', 'gnu.ipk'))
  t.equal(gnu.data.find((e) => e.name === './usr/bin/ugate')?.mode, 0o755, 'GNU format: accepted, modes kept')
  t.equal(gnu.gzip.outer.hasName, false, 'gzip -n stores no file name')
  t.equal(gnu.gzip.outer.mtime, 0, 'gzip -n stores no time')
  t.ok(readIpk(make('ustar', 'ustar.ipk')), 'ustar format: accepted')
  rejects(t, make('pax', 'pax.ipk'), 'pax-header', 'GNU tar --format=pax')
  rejects(t, make('v7', 'v7.ipk'), 'bad-magic', 'GNU tar --format=v7')
  sh('ar rc ar.ipk debian-binary data.tar.gz control.tar.gz 2>/dev/null || printf "!<arch>\\n" > ar.ipk')
  rejects(t, readFileSync(join(dir, 'ar.ipk')), 'ar-format', 'ar (Debian .deb layout)')
})
