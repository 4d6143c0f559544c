// openwrt/build-ipk.sh end to end: every package it writes passes the strict
// reader (test/lib/ipk-reader.ts), holds exactly the expected files with the
// expected modes and contents, carries OpenWrt's maintainer scripts, and a
// second build gives the same bytes (reproducible). Sizes are printed.
//
// The LuCI app is packaged from luci/ when luci/htdocs or luci/root hold
// files, else from a placeholder tree made here. Like ipk-cross.ts this runs
// once, in the build/ugate suite.

import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { readIpk } from '../lib/ipk-reader.js'
import type { Ipk } from '../lib/ipk-reader.js'
import { runBuild, sourceDateEpoch } from '../lib/packages.js'
import { repoRoot } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

t.setTimeout(60 * 60_000)

const ARCHS = ['x86_64', 'aarch64_generic', 'arm_cortex-a7_neon-vfpv4', 'mipsel_24kc', 'mips_24kc']
const VERSION = (JSON.parse(readFileSync(resolve(repoRoot, 'package.json'), 'utf8')) as { version: string }).version
const POSTINST = `#!/bin/sh
[ "\${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
default_postinst $0 $@
`
const PRERM = `#!/bin/sh
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
default_prerm $0 $@
`

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

const buildIpk = (env: NodeJS.ProcessEnv) => runBuild('openwrt/build-ipk.sh', env)

/** Files under dir (relative, sorted), for the LuCI tree. */
function walk(dir: string): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  const go = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) go(p)
      else out.push(relative(dir, p))
    }
  }
  go(dir)
  return out.sort()
}

/** Directories leading to each file, as tar names ("./a/", "./a/b/"). */
function withDirs(files: string[]): string[] {
  const all = new Set<string>(['./'])
  for (const f of files) {
    const parts = f.split('/')
    for (let i = 1; i < parts.length; i++) all.add(`./${parts.slice(0, i).join('/')}/`)
    all.add(`./${f}`)
  }
  return [...all].sort()
}

function commonChecks(t: Test, ipk: Ipk, epoch: number) {
  for (const [what, h] of Object.entries(ipk.gzip)) {
    t.equal(h.hasName, false, `${what} gzip: no file name (gzip -n)`)
    t.equal(h.mtime, 0, `${what} gzip: no time stamp (gzip -n)`)
  }
  const stamps = new Set([...ipk.outer, ...ipk.data, ...ipk.controlFiles.values()].map((e) => e.mtime))
  t.same([...stamps], [epoch], `every entry's mtime is SOURCE_DATE_EPOCH (${epoch})`)
  t.ok(
    [...ipk.outer, ...ipk.data, ...ipk.controlFiles.values()].every((e) => e.format === 'gnu'),
    'GNU tar headers throughout',
  )
  t.equal(ipk.controlFiles.get('postinst')?.data.toString(), POSTINST, "postinst is OpenWrt's default_postinst body")
  t.equal(ipk.controlFiles.get('prerm')?.data.toString(), PRERM, "prerm is OpenWrt's default_prerm body")
  t.equal(ipk.controlFiles.get('postinst')?.mode, 0o755, 'postinst 0755')
  t.equal(ipk.controlFiles.get('prerm')?.mode, 0o755, 'prerm 0755')
  t.equal(ipk.controlFiles.get('control')?.mode, 0o644, 'control 0644')
  t.equal(ipk.control.get('License'), 'Apache-2.0', 'License')
}

if (process.env.UGATE_BIN && resolve(repoRoot, process.env.UGATE_BIN) !== resolve(repoRoot, 'build/ugate')) {
  t.fail(`test/package/ tests the packaged binaries, not UGATE_BIN=${process.env.UGATE_BIN}: run it without UGATE_BIN`)
} else {
  const work = tempDir(t, 'ipk-packages-')

  // The LuCI tree: luci/ when it has files, else a placeholder.
  let luciDir = resolve(repoRoot, 'luci')
  if (walk(join(luciDir, 'htdocs')).length + walk(join(luciDir, 'root')).length === 0) {
    luciDir = join(work, 'luci')
    mkdirSync(join(luciDir, 'htdocs/luci-static/resources/view/ugate'), { recursive: true })
    mkdirSync(join(luciDir, 'root/usr/libexec/rpcd'), { recursive: true })
    mkdirSync(join(luciDir, 'root/usr/share/luci/menu.d'), { recursive: true })
    writeFileSync(join(luciDir, 'htdocs/luci-static/resources/view/ugate/settings.js'), "'use strict';\n")
    writeFileSync(join(luciDir, 'root/usr/share/luci/menu.d/luci-app-ugate.json'), '{}\n')
    writeFileSync(join(luciDir, 'root/usr/libexec/rpcd/luci.ugate'), '#!/bin/sh\necho {}\n', { mode: 0o755 })
    t.comment(`luci/ is empty: packaging a placeholder tree (${luciDir})`)
  }
  const luciFiles = [
    ...walk(join(luciDir, 'htdocs')).map((f) => ({ src: join(luciDir, 'htdocs', f), name: `www/${f}` })),
    ...walk(join(luciDir, 'root')).map((f) => ({ src: join(luciDir, 'root', f), name: f })),
  ]
  const env = { UGATE_LUCI_DIR: luciDir }
  const first = resolve(repoRoot, 'build/ipk')
  const second = join(work, 'again')
  const epoch = sourceDateEpoch()

  t.test('openwrt/build-ipk.sh builds every package', async (t) => {
    const r = await buildIpk(env)
    t.equal(r.status, 0, 'build-ipk.sh exits 0', { stderr: r.stderr.split('\n').slice(-40) })
    for (const l of r.stderr.split('\n').filter((x) => /\.ipk: \d+ bytes/.test(x))) t.comment(l)
  })

  const expectedNames = [
    ...ARCHS.map((a) => `ugate_${VERSION}-r1_${a}.ipk`),
    `luci-app-ugate_${VERSION}_all.ipk`,
  ].sort()

  t.test('the output directory holds exactly the expected packages', async (t) => {
    t.same(
      readdirSync(first)
        .filter((f) => f.endsWith('.ipk'))
        .sort(),
      expectedNames,
    )
  })

  for (const arch of ARCHS) {
    t.test(`ugate_${VERSION}-r1_${arch}.ipk`, async (t) => {
      const file = join(first, `ugate_${VERSION}-r1_${arch}.ipk`)
      const ipk = readIpk(readFileSync(file))
      t.comment(`${arch}: ${statSync(file).size} bytes (.ipk), ${ipk.dataTarSize} bytes installed`)
      t.same(
        ipk.control.fields.map(([n]) => n),
        ['Package', 'Version', 'License', 'Section', 'Architecture', 'Installed-Size', 'Description'],
        'control fields',
      )
      t.equal(ipk.control.get('Package'), 'ugate')
      t.equal(ipk.control.get('Version'), `${VERSION}-r1`)
      t.equal(ipk.control.get('Architecture'), arch)
      t.equal(ipk.control.get('Section'), 'net')
      t.same([...ipk.controlFiles.keys()].sort(), ['conffiles', 'control', 'postinst', 'prerm'], 'control.tar members')
      t.same(ipk.conffiles, ['/etc/config/ugate'], 'conffiles')
      t.same(
        ipk.data.map((e) => `${e.name} ${e.type} ${e.mode.toString(8)}`),
        [
          './ dir 755',
          './etc/ dir 755',
          './etc/config/ dir 755',
          './etc/config/ugate file 600',
          './etc/init.d/ dir 755',
          './etc/init.d/ugate file 755',
          './etc/uci-defaults/ dir 755',
          './etc/uci-defaults/99-ugate file 755',
          './usr/ dir 755',
          './usr/bin/ dir 755',
          './usr/bin/ugate file 755',
        ],
        'data files and modes',
      )
      const content = (name: string) => ipk.data.find((e) => e.name === name)!.data
      t.ok(
        content('./usr/bin/ugate').equals(readFileSync(resolve(repoRoot, `build/cross/${arch}/ugate`))),
        `./usr/bin/ugate is build/cross/${arch}/ugate`,
      )
      for (const f of ['etc/init.d/ugate', 'etc/config/ugate', 'etc/uci-defaults/99-ugate']) {
        t.ok(content(`./${f}`).equals(readFileSync(resolve(repoRoot, 'files', f))), `./${f} is files/${f}`)
      }
      commonChecks(t, ipk, epoch)
    })
  }

  t.test(`luci-app-ugate_${VERSION}_all.ipk`, async (t) => {
    const file = join(first, `luci-app-ugate_${VERSION}_all.ipk`)
    const ipk = readIpk(readFileSync(file))
    t.comment(`luci-app-ugate: ${statSync(file).size} bytes (.ipk), ${ipk.dataTarSize} bytes installed`)
    t.same(
      ipk.control.fields.map(([n]) => n),
      ['Package', 'Version', 'Depends', 'License', 'Section', 'Architecture', 'Installed-Size', 'Description'],
      'control fields',
    )
    t.equal(ipk.control.get('Package'), 'luci-app-ugate')
    t.equal(ipk.control.get('Version'), VERSION)
    t.equal(ipk.control.get('Architecture'), 'all')
    t.equal(ipk.control.get('Depends'), 'luci-base, ugate')
    t.equal(ipk.control.get('Section'), 'luci')
    t.same([...ipk.controlFiles.keys()].sort(), ['control', 'postinst', 'postinst-pkg', 'prerm'], 'control.tar members')
    t.same(ipk.conffiles, [], 'no conffiles')
    t.same(
      ipk.data.map((e) => e.name),
      withDirs(luciFiles.map((f) => f.name)),
      'htdocs → /www, root → /',
    )
    for (const f of luciFiles) {
      const e = ipk.data.find((x) => x.name === `./${f.name}`)!
      const exec = (statSync(f.src).mode & 0o100) !== 0
      t.equal(e.mode, exec ? 0o755 : 0o644, `./${f.name} ${exec ? '0755 (run bit kept)' : '0644'}`)
      t.ok(e.data.equals(readFileSync(f.src)), `./${f.name} content`)
    }
    t.ok(
      ipk.data.filter((e) => e.type === 'dir').every((e) => e.mode === 0o755),
      'directories 0755',
    )
    const pkgScript = ipk.controlFiles.get('postinst-pkg')!
    t.equal(pkgScript.mode, 0o755, 'postinst-pkg 0755 (default_postinst sources it)')
    const body = pkgScript.data.toString()
    t.match(body, /^#!\/bin\/sh\n/, 'postinst-pkg has a shebang')
    t.match(body, /rm -f \/tmp\/luci-indexcache\*/, 'clears /tmp/luci-indexcache*')
    t.match(body, /rm -rf \/tmp\/luci-modulecache\//, 'clears /tmp/luci-modulecache/')
    t.match(body, /killall -HUP rpcd/, 'reloads rpcd')
    t.match(body, /\[ -n "\$\{IPKG_INSTROOT\}" \] \|\|/, 'only on a live router (not in an image build)')
    t.equal(spawnSync('sh', ['-n', '-c', body]).status, 0, 'postinst-pkg parses (sh -n)')
    commonChecks(t, ipk, epoch)
  })

  t.test('a second build gives the same bytes (reproducible)', async (t) => {
    const r = await buildIpk({ ...env, UGATE_BUNDLE_FRESH: '1', UGATE_IPK_OUT: second })
    t.equal(r.status, 0, 'second build-ipk.sh exits 0', { stderr: r.stderr.split('\n').slice(-40) })
    for (const name of expectedNames) {
      const a = sha(readFileSync(join(first, name)))
      const b = sha(readFileSync(join(second, name)))
      t.equal(b, a, `${name}: sha256 ${a.slice(0, 16)}… both times`)
    }
  })
}
