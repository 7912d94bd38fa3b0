// cpu: a CPU-bound action, the JavaScript twin of examples/actions/cpu.
// Counts the primes below param `n` (default 100000) by trial division:
// {"n": 100} -> {"n": 100, "primes": 25}.
function isPrime(k) {
  if (k < 4) return k >= 2;
  if (k % 2 === 0) return false;
  for (let d = 3; d * d <= k; d += 2) {
    if (k % d === 0) return false;
  }
  return true;
}

function main(params) {
  const n = params.n === undefined ? 100000 : params.n;
  if (!Number.isSafeInteger(n) || n < 0) {
    return { error: "parameter 'n' must be a non-negative integer" };
  }
  let primes = 0;
  for (let k = 2; k < n; k++) {
    if (isPrime(k)) primes++;
  }
  return { n, primes };
}
