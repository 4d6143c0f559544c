// Headless Chromium (Debian's `chromium`) through puppeteer-core, for the
// page tests: one page whose console errors, page errors and requests to
// anywhere `allowed` does not accept are collected as problems.

import { existsSync } from 'node:fs'
import puppeteer, { type Browser, type Page } from 'puppeteer-core'
import { requireCommand } from './http.js'
import type { TestLike } from './ugate.js'

export interface BrowserPage {
  browser: Browser
  page: Page
  /** "console: …", "page: …", "request elsewhere: URL"; a test expects none. */
  problems: string[]
}

export async function openPage(
  t: TestLike,
  viewport: { width: number; height: number },
  allowed: (url: string) => boolean,
): Promise<BrowserPage> {
  requireCommand('chromium', 'chromium')
  const browser = await puppeteer.launch({
    executablePath: existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : 'chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu'],
  })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.setViewport(viewport)
  const problems: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`page: ${String(e)}`))
  page.on('request', (r) => {
    if (!allowed(r.url())) problems.push(`request elsewhere: ${r.url()}`)
  })
  return { browser, page, problems }
}
