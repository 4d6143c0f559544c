// A small, fixed package shaped like ugate's (binary, init script, conffile,
// uci-defaults, apk's /lib/apk/packages files, OpenWrt's three scripts),
// written by openwrt/apk.ts from fixed inputs: the same bytes every time.
// test/fixtures/apk/sample.adbdump is real `apk adbdump` of it.

import { createHash } from 'node:crypto'
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { PackageSpec } from '../../openwrt/apk.js'

export const SAMPLE_EPOCH = 1764950000

/** Deterministic bytes (xorshift32), standing in for a binary. */
export function pseudoRandom(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    b[i] = x & 0xff
  }
  return b
}

const SCRIPT = (body: string) => Buffer.from(`#!/bin/sh\n${body}`)

/** Stage the sample tree in DIR (created) and return the writer's input. */
export function sampleSpec(dir: string, over: Partial<{ list: string; conffilesStatic: string }> = {}): PackageSpec {
  const put = (rel: string, data: Buffer | string, mode: number) => {
    const p = join(dir, rel)
    mkdirSync(dirname(p), { recursive: true, mode: 0o755 })
    writeFileSync(p, data)
    chmodSync(p, mode)
  }
  const config = "config ugate 'main'\n\toption enabled '1'\n"
  put('usr/bin/ugate', pseudoRandom(7, 5000), 0o755)
  put('etc/init.d/ugate', '#!/bin/sh /etc/rc.common\nSTART=99\n', 0o755)
  put('etc/config/ugate', config, 0o600)
  put('etc/uci-defaults/99-ugate', '#!/bin/sh\nexit 0\n', 0o755)
  put('etc/empty', '', 0o644)
  const files = ['/etc/config/ugate', '/etc/empty', '/etc/init.d/ugate', '/etc/uci-defaults/99-ugate', '/usr/bin/ugate']
  put('lib/apk/packages/ugate.list', over.list ?? `${files.join('\n')}\n`, 0o644)
  put('lib/apk/packages/ugate.conffiles', '/etc/config/ugate\n', 0o644)
  const sum = createHash('sha256').update(config).digest('hex')
  put('lib/apk/packages/ugate.conffiles_static', over.conffilesStatic ?? `/etc/config/ugate ${sum}\n`, 0o644)
  // mkdir's mode is masked by the umask: set the directories' modes outright.
  for (const d of [
    '',
    'usr',
    'usr/bin',
    'etc',
    'etc/init.d',
    'etc/config',
    'etc/uci-defaults',
    'lib',
    'lib/apk',
    'lib/apk/packages',
  ]) {
    chmodSync(join(dir, d), 0o755)
  }
  return {
    info: {
      name: 'ugate',
      version: '0.1.0-r1',
      description: 'Tiny gateway: sample package',
      arch: 'x86_64',
      license: 'Apache-2.0',
      origin: 'package/ugate',
    },
    depends: [],
    files: dir,
    scripts: {
      'post-install': SCRIPT('default_postinst\n'),
      'post-upgrade': SCRIPT('export PKG_UPGRADE=1\ndefault_postinst\n'),
      'pre-deinstall': SCRIPT('default_prerm\n'),
    },
    epoch: SAMPLE_EPOCH,
  }
}
