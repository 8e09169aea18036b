// The reference page across a server restart: usage: node reconnect.mjs <base url> <chromium>.
// Prints "READY <token>" once the page is live, then waits for "GO <title>" on stdin (the test
// has restarted the server and created that task meanwhile), and prints one JSON line.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [base, executablePath] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const results = {};
try {
  const page = await browser.newPage();
  await page.goto(`${base}/examples/browser/index.html`);
  await page.fill("#user", `restart-${Date.now()}`);
  await page.click("#mint");
  await page.waitForSelector("#status.live", { timeout: 10000 });
  console.log(`READY ${await page.inputValue("#token")}`);
  const { value } = await lines.next();
  const title = value.replace(/^GO /, "");
  await page.getByText(title).waitFor({ timeout: 20000 });  // replayed from the last event seen
  await page.waitForSelector("#status.live", { timeout: 20000 });
  results.seen_after_restart = true;
  results.status = await page.textContent("#status");
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
