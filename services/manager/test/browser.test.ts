/**
 * The console in a real browser (Debian's Chromium, driven by playwright-core): an analyst
 * signs in, opens an alert (evidence, flow, the block it caused) and is refused when lifting
 * the block; an operator lifts it; an auditor reads both in the audit trail. Screenshots go
 * to .cache/screenshots/ at the repository's root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { waitFor } from '@cordon/testkit';
import { PASSWORD, putBlock, putVm, startWorld, putAlertRow } from './world.js';

const CHROMIUM = process.env.CORDON_CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = fileURLToPath(new URL('../../../../.cache/screenshots/', import.meta.url));
const CONSOLE = fileURLToPath(new URL('../../console/dist/index.html', import.meta.url));

async function signIn(page: Page, url: string, user: string): Promise<void> {
  await page.goto(`${url}/`);
  await page.fill('input[name=user]', user);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=who]');
}

async function signOut(page: Page): Promise<void> {
  await page.click('text=Sign out');
  await page.waitForSelector('input[name=user]');
}

test(
  'the console in Chromium: an analyst views an alert and is refused a lift, an operator lifts the block, an auditor sees both',
  {
    skip: existsSync(CHROMIUM)
      ? false
      : `${CHROMIUM} is not installed (scripts/setup.sh installs it with CORDON_SETUP_TEST=1)`,
  },
  async () => {
    assert.ok(existsSync(CONSOLE), 'the console is built (npm run build)');
    mkdirSync(SHOTS, { recursive: true });
    const w = await startWorld();
    const profile = mkdtempSync(join(tmpdir(), 'cordon-chromium-'));
    let browser: BrowserContext | null = null;
    try {
      await putVm(w, 'web-1', 'hv1', 'cluster-a');
      await putVm(w, 'dns-1', 'hv1', 'cluster-a');
      await putVm(w, 'db-1', 'hv2', 'cluster-b');
      await putBlock(w, 'watchdog:hv1', '203.0.113.66', 'web-1');
      await w.store.insert(
        'flows',
        [
          {
            flow_id: 'flow-1',
            sensor: 'watchdog:hv1',
            vm: 'web-1',
            vlan: 0,
            proto: 6,
            src_ip: '::ffff:203.0.113.66',
            src_port: 40000,
            dst_ip: '::ffff:192.0.2.10',
            dst_port: 80,
            first_seen: '2025-01-01 10:00:00.000000',
            last_seen: '2025-01-01 10:00:01.000000',
            pkts_toserver: 4,
            pkts_toclient: 3,
            bytes_toserver: 512,
            bytes_toclient: 2048,
            tcp_flags_toserver: 27,
            tcp_flags_toclient: 27,
            end_reason: 'fin',
          },
        ],
        { batchId: 'browser-flow' },
      );
      await putAlertRow(w, 'alert-1', 'web-1', { flow_id: 'flow-1' });
      for (const [name, role] of [
        ['ana', 'analyst'],
        ['olga', 'operator'],
        ['aud', 'auditor'],
      ] as const)
        await w.userWithToken(role, { name });
      await waitFor('the views', () => w.manager.views.blocks.size === 1 && w.manager.views.inventory.size === 5);
      const url = w.manager.url;

      // a fresh profile, and nothing that reaches for Google's hosts (the machine's network is closed)
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM,
        headless: true,
        viewport: { width: 1280, height: 800 },
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));

      // the analyst: the inventory tree, then an alert with its flow, evidence and block
      await signIn(page, url, 'ana');
      await page.goto(`${url}/#/inventory`);
      await page.waitForSelector('[data-testid=inventory-tree] >> text=web-1');
      await page.click('[data-testid=inventory-tree] >> text=web-1');
      await page.waitForSelector('[data-testid=vm-detail]');
      await page.screenshot({ path: join(SHOTS, 'inventory.png'), fullPage: true });
      await page.goto(`${url}/#/alerts`);
      await page.click('[data-testid=alerts] >> text=ET WEB path traversal');
      await page.waitForSelector('[data-testid=alert-detail]');
      assert.match((await page.textContent('[data-testid=evidence]')) ?? '', /etc\/passwd/);
      assert.match((await page.textContent('[data-testid=flow]')) ?? '', /203\.0\.113\.66:40000 → 192\.0\.2\.10:80/);
      assert.match((await page.textContent('[data-testid=alert-blocks]')) ?? '', /in force/);
      await page.screenshot({ path: join(SHOTS, 'alert-detail.png'), fullPage: true });
      // the analyst's lift is refused by the API, and the console says so
      await page.goto(`${url}/#/blocks`);
      await page.fill('[data-block="watchdog:hv1|203.0.113.66"] input', 'trying anyway');
      await page.click('[data-block="watchdog:hv1|203.0.113.66"] button');
      await page.waitForSelector('.problem');
      assert.match((await page.textContent('.problem')) ?? '', /CORDON_ERR_MANAGER_FORBIDDEN/);
      await page.screenshot({ path: join(SHOTS, 'lift-refused-analyst.png'), fullPage: true });
      assert.equal(w.manager.views.blocks.size, 1, 'the block is still there');
      await signOut(page);

      // the operator lifts it
      await signIn(page, url, 'olga');
      await page.goto(`${url}/#/blocks`);
      await page.fill('[data-block="watchdog:hv1|203.0.113.66"] input', 'our own pentest');
      await page.click('[data-block="watchdog:hv1|203.0.113.66"] button');
      await page.waitForSelector('.done');
      assert.match((await page.textContent('.done')) ?? '', /Lifted 203\.0\.113\.66/);
      await page.screenshot({ path: join(SHOTS, 'lift-operator.png'), fullPage: true });
      assert.equal(w.manager.views.blocks.size, 0);
      await signOut(page);

      // the auditor sees who tried and who did
      await waitFor(
        'the lift audit rows',
        async () => (await w.store.query("SELECT 1 FROM audit WHERE action = 'block.lift'")).length >= 2 || null,
      );
      await signIn(page, url, 'aud');
      await page.goto(`${url}/#/audit`);
      await page.fill('input[placeholder="action (block.lift)"]', 'block.lift');
      await page.press('input[placeholder="action (block.lift)"]', 'Enter');
      await page.waitForFunction("(document.querySelector('[data-testid=audit] tbody')?.children.length ?? 0) >= 2");
      const trail = (await page.textContent('[data-testid=audit]')) ?? '';
      assert.match(trail, /olga.*operator.*block\.lift.*ok/s);
      assert.match(trail, /ana.*analyst.*block\.lift.*denied/s);
      await page.screenshot({ path: join(SHOTS, 'audit.png'), fullPage: true });
      // the auditor's console has only the audit page
      assert.deepEqual(await page.$$eval('header nav a', (as) => as.map((a) => a.textContent)), [
        'Users & roles',
        'Audit',
      ]);
      assert.deepEqual(errors, [], 'no script error in the page');
      console.log(`screenshots: ${SHOTS}`);
    } finally {
      await browser?.close();
      rmSync(profile, { recursive: true, force: true });
      await w.close();
    }
  },
);
