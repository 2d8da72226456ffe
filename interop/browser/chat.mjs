// Drives Debian's Chromium through xmppd's /chat page (Converse.js) for
// ../browser_test.go: logs in through Converse's own login form, opens a
// chat with PEER through Converse's URL route (#converse/chat?jid=…),
// types MESSAGE and presses Enter, waits until REPLY shows in the chat,
// and saves a screenshot to SCREENSHOT (also on failure).
//
// Settings come from the environment: URL (…/chat), USER_NAME (the user name:
// the page locks the domain), PASSWORD, PEER, MESSAGE, REPLY, SCREENSHOT,
// CHROMIUM (default /usr/bin/chromium), and BOSH_URL: when set, the page's
// Converse settings are changed before Converse starts to use BOSH there
// instead of the WebSocket (the script then reports how many requests went
// to BOSH and how many WebSockets were opened).
import { chromium } from 'playwright-core';

const env = (k, d) => {
    const v = process.env[k] ?? d;
    if (v === undefined) throw new Error(`${k} is not set`);
    return v;
};
const url = env('URL'), user = env('USER_NAME'), password = env('PASSWORD'), peer = env('PEER');
const message = env('MESSAGE'), reply = env('REPLY'), screenshot = env('SCREENSHOT');
const timeout = 30000;

const step = (s) => console.log(`step: ${s}`);
const browser = await chromium.launch({
    executablePath: env('CHROMIUM', '/usr/bin/chromium'),
    args: ['--no-sandbox', '--ignore-certificate-errors'],
});
let failed = false;
const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
page.setDefaultTimeout(timeout);
page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.log(`console.${m.type()}: ${m.text()}`);
});
page.on('pageerror', (e) => console.log(`pageerror: ${e.message}`));
page.on('response', (r) => {
    if (r.status() >= 400) console.log(`response: ${r.status()} ${r.url()}`);
});
page.on('requestfailed', (r) => console.log(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
const boshURL = process.env.BOSH_URL ?? '';
let boshRequests = 0, webSockets = 0;
if (boshURL) {
    page.on('request', (r) => { if (r.url() === boshURL) boshRequests++; });
    page.on('websocket', () => { webSockets++; });
    // Converse's global is assigned by its module script; its settings are
    // passed by the page's own script after it. The settings are rewritten
    // on their way into initialize.
    await page.addInitScript((bosh) => {
        let real;
        const wrap = (v) => {
            if (!v || v.__xmppdBOSH || typeof v.initialize !== 'function') return v;
            const init = v.initialize;
            v.initialize = function (settings) {
                const s = { ...settings, bosh_service_url: bosh };
                delete s.websocket_url;
                return init.call(this, s);
            };
            v.__xmppdBOSH = true;
            return v;
        };
        Object.defineProperty(window, 'converse', {
            configurable: true,
            get() { return wrap(real); },
            set(v) { real = v; },
        });
    }, boshURL);
}
try {
    step(`open ${url}`);
    await page.goto(url);

    step('log in through the login form');
    const form = page.locator('converse-login-form form');
    await form.locator('#converse-login-jid').fill(user);
    await form.locator('input[name="password"]').fill(password);
    await form.locator('button[type="submit"]').first().click();
    await page.locator('#converse-roster').waitFor();

    step(`open a chat with ${peer}`);
    await page.evaluate((jid) => { location.hash = `converse/chat?jid=${jid}`; }, peer);
    const chat = page.locator(`converse-chat[jid="${peer}"]`);
    const input = chat.locator('textarea.chat-textarea');
    await input.waitFor();

    step('type and send the message');
    await input.fill(message);
    await input.press('Enter');
    await chat.locator('.chat-msg__text', { hasText: message }).first().waitFor();
    console.log('sent');

    step('wait for the reply');
    await chat.locator('.chat-msg__text', { hasText: reply }).first().waitFor();
    console.log('reply shown');
    if (boshURL) console.log(`bosh requests: ${boshRequests}, websockets: ${webSockets}`);
} catch (e) {
    failed = true;
    console.log(`FAILED: ${e.message}`);
} finally {
    await page.screenshot({ path: screenshot, fullPage: true }).catch((e) => console.log(`screenshot: ${e.message}`));
    console.log(`screenshot: ${screenshot}`);
    await browser.close();
}
process.exit(failed ? 1 : 0);
