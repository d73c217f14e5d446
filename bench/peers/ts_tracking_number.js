// Throughput of the npm package `ts-tracking-number` (getTracking) on one thread.
// Reports numbers per second of wall time and of process CPU time (user + system).
const fs = require('fs');
const { getTracking } = require('ts-tracking-number');

const numbers = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((s) => s.length > 0);
function run(items) {
  let found = 0;
  for (const n of items) {
    try {
      if (getTracking(n)) found += 1;
    } catch (e) {
      // count as not found
    }
  }
  return found;
}
run(numbers.slice(0, 2000));
const wall0 = process.hrtime.bigint();
const cpu0 = process.cpuUsage();
const found = run(numbers);
const wall = Number(process.hrtime.bigint() - wall0) / 1e9;
const used = process.cpuUsage(cpu0);
const cpu = (used.user + used.system) / 1e6;
console.log(`npm ts-tracking-number\t${numbers.length} numbers\twall ${(numbers.length / wall).toFixed(0)}/s\tcpu ${(numbers.length / cpu).toFixed(0)}/s\t${found} detected`);
