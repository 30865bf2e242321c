"""Regenerate the fitted polynomial coefficients used in dualgraph/compile/mathlib.py.

    python benchmarks/mathlib_coeffs.py

Chebyshev interpolation at n+1 nodes (near-minimax), computed with mpmath at 40 digits and
converted to monomial coefficients in u = (x - c) / h, so that Horner in |u| <= 1 is stable.
Only erf needs fitted coefficients; the other functions use exact Taylor / atanh series.
"""
import mpmath as mp

mp.mp.dps = 40


def cheb_fit(f, a, b, n):
    N = n + 1
    nodes = [mp.cos(mp.pi * (k + mp.mpf(1) / 2) / N) for k in range(N)]
    c = (mp.mpf(a) + b) / 2
    h = (mp.mpf(b) - a) / 2
    vals = [f(c + h * u) for u in nodes]
    cc = [2 * mp.fsum(vals[k] * mp.cos(mp.pi * j * (k + mp.mpf(1) / 2) / N) for k in range(N)) / N
          for j in range(N)]
    cc[0] /= 2
    T = [[mp.mpf(1)], [mp.mpf(0), mp.mpf(1)]]
    for _ in range(2, N):
        nxt = [mp.mpf(0)] + [2 * v for v in T[-1]]
        for i, v in enumerate(T[-2]):
            nxt[i] -= v
        T.append(nxt)
    mono = [mp.mpf(0)] * N
    for j in range(N):
        for i, v in enumerate(T[j]):
            mono[i] += cc[j] * v
    return [float(m) for m in mono], float(c), float(h)


def show(name, coefs, c=None, h=None):
    print(f"# {name}" + ("" if c is None else f"  center={c!r} halfwidth={h!r}"))
    print(f"{name} = (" + ", ".join(repr(v) for v in coefs) + ",)")


if __name__ == "__main__":
    def R(x):  # erfc(x) * exp(x^2), smooth and slowly varying
        return mp.erfc(x) * mp.exp(x * x)

    # erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)), as x * P(x^2)
    taylor = [2 / mp.sqrt(mp.pi) * (-1) ** n / (mp.factorial(n) * (2 * n + 1)) for n in range(17)]
    show("ERF_SMALL", [float(v) for v in taylor])
    for name, a, b, n in [("ERFC_R64_A", 0.84375, 2.5, 18), ("ERFC_R64_B", 2.5, 6.0, 18),
                          ("ERFC_R32", 0.84375, 4.0, 16)]:
        co, c, h = cheb_fit(R, a, b, n)
        show(name, co, c, h)
