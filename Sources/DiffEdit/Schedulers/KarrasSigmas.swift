import Glibc

/// The Karras et al. (2022, eq. 5) noise levels that `use_karras_sigmas` schedulers run at, and the mapping
/// of a sigma back to a (fractional) training timestep, computed as diffusers' `_convert_to_karras` and
/// `_sigma_to_t` do (numpy float64 over the float32 training sigmas).
enum KarrasSigmas {
    /// n sigmas from sMax down to sMin, rho = 7: (max^(1/rho) + ramp (min^(1/rho) - max^(1/rho)))^rho,
    /// ramp = linspace(0, 1, n). (DPM-Solver: the training schedule's extremes; Euler: those of its spaced sigmas.)
    static func sigmas(min sMin: Double, max sMax: Double, steps n: Int) -> [Double] {
        let rho = 7.0
        let lo = pow(sMin, 1 / rho), hi = pow(sMax, 1 / rho)
        return NumpyMath.linspace(0, 1, n).map { pow(hi + $0 * (lo - hi), rho) }
    }

    /// The training timestep of `sigma` by linear interpolation of log sigma between its neighbours on the
    /// training schedule (logSigmas ascending with t).
    static func timestep(sigma: Double, logSigmas: [Float]) -> Double {
        let ls = log(max(sigma, 1e-10))
        var low = 0
        for (i, l) in logSigmas.enumerated() where ls - Double(l) >= 0 { low = i }   // last index with log_sigma_i <= ls
        low = min(low, logSigmas.count - 2)
        let lo = Double(logSigmas[low]), hi = Double(logSigmas[low + 1])
        let w = min(max((lo - ls) / (lo - hi), 0), 1)
        return (1 - w) * Double(low) + w * Double(low + 1)
    }
}
