// Throughput of the npm package `ts-tracking-number` (getTracking) on one thread.
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
const start = process.hrtime.bigint();
const found = run(numbers);
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`npm ts-tracking-number\t${numbers.length}\t${elapsed.toFixed(3)}s\t${(numbers.length / elapsed).toFixed(0)} numbers/s\t${found} detected`);
