// Opens the reference page (examples/browser) in headless chromium and checks it live:
// usage: node live_page.mjs <base url> <chromium path>; prints one JSON line of results.
import { chromium } from "playwright-core";

const [base, executablePath] = process.argv.slice(2);
const user = `browser-${Date.now()}`;
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
const results = {};
try {
  const context = await browser.newContext();
  const first = await context.newPage();
  await first.goto(`${base}/examples/browser/index.html`);
  await first.fill("#user", user);
  await first.click("#mint");
  await first.waitForSelector("#status.live", { timeout: 10000 });
  const token = await first.inputValue("#token");

  const second = await context.newPage();  // another tab, same user
  await second.goto(`${base}/examples/browser/index.html#token=${token}`);
  await second.waitForSelector("#status.live", { timeout: 10000 });

  // 1. a task created through the API appears on the open page
  const title = `from the API ${Date.now()}`;
  const started = Date.now();
  const made = await fetch(`${base}/api/tasks`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ title }),
  });
  results.created = made.status;
  await first.getByText(title).waitFor({ timeout: 2000 });
  results.api_to_page_ms = Date.now() - started;

  // 2. a task added in one tab appears in the other
  await first.fill("#title", "added in tab one");
  await first.click("#add button");
  await second.getByText("added in tab one").waitFor({ timeout: 2000 });
  results.tab_to_tab = true;

  // 3. a toggle in tab two (If-Match) shows as completed in tab one and in the API
  await second.getByLabel("added in tab one").check();
  await first.locator("li.completed", { hasText: "added in tab one" }).waitFor({ timeout: 2000 });
  const listed = await fetch(`${base}/api/tasks?completed=true`, { headers: { Authorization: `Bearer ${token}` } });
  results.completed_titles = (await listed.json()).map((t) => t.title);
  results.error_text = await first.textContent("#error");

  // 4. a reminder fired by `todo-api worker` shows on the page (as text: headless chromium
  //    grants no notification permission)
  const reminded = `stretch ${Date.now()}`;
  const remindAt = new Date(Date.now() + 1500).toISOString();
  await fetch(`${base}/api/tasks`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ title: reminded, remind_at: remindAt }),
  });
  await first.locator("#error", { hasText: `Reminder: ${reminded}` }).waitFor({ timeout: 15000 });
  results.reminder_shown = true;
} finally {
  await browser.close();
}
console.log(JSON.stringify(results));
