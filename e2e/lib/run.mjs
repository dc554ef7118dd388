// Builds chatd once, then runs every *.test.mjs with Node's test runner
// against that binary (CHATD_BIN). Extra arguments go to `node --test`
// (e.g. `npm test -- auth.test.mjs`). With CHATD_BIN already set, nothing
// is built.

import { spawn } from "node:child_process";
import { buildChatd } from "./chatd.mjs";

let bin;
try {
  bin = await buildChatd();
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
// --test-concurrency=2: two files at a time. Each file starts its own chatd
// processes, Redis servers and ports (freePort), so files do not share state;
// most of a file's time is waiting (timeouts, expiries), and two at a time
// took the suite from about 5.5 to under 4 minutes on 2 cores.
// --test-force-exit: a file whose tests have all ended exits even if an
// after hook that failed left a server or a child process behind, instead
// of hanging the suite.
const args = ["--test", "--test-concurrency=2", "--test-force-exit", "--test-reporter=spec", ...process.argv.slice(2)];
const child = spawn(process.execPath, args, { stdio: "inherit", env: { ...process.env, CHATD_BIN: bin } });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
child.on("exit", (code, signal) => {
  // buildChatd removes its temporary directory when this process exits.
  process.exitCode = code ?? (signal ? 1 : 0);
});
