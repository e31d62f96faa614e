import FoundationEssentials

/// The few NumPy routines diffusers uses to place inference timesteps, reproduced with NumPy's own
/// float64 arithmetic (so that rounding ties and array lengths come out identical).
public enum NumpyMath {
    /// np.linspace(start, stop, num) (endpoint included) in float64.
    public static func linspace(_ start: Double, _ stop: Double, _ num: Int) -> [Double] {
        if num <= 0 { return [] }
        if num == 1 { return [start] }
        let step = (stop - start) / Double(num - 1)
        var y = (0..<num).map { Double($0) * step + start }
        y[num - 1] = stop
        return y
    }

    /// np.arange(start, stop, step) for float64 arguments: length ceil((stop - start) / step), values
    /// start + i * ((start + step) - start) as NumPy's fill does.
    public static func arange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
        let lenD = ((stop - start) / step).rounded(.up)
        guard lenD.isFinite, lenD > 0 else { return [] }
        let len = Int(lenD)
        let delta = (start + step) - start
        return (0..<len).map { $0 == 0 ? start : start + Double($0) * delta }
    }

    /// np.round (half to even).
    public static func round(_ x: Double) -> Double { x.rounded(.toNearestOrEven) }

    /// np.interp(x, arange(len(fp)), fp) for sample points on the integer grid 0..<fp.count.
    public static func interpOnIndexGrid(_ x: Double, _ fp: [Double]) -> Double {
        let last = fp.count - 1
        if x.isNaN { return x }
        if x <= 0 { return fp[0] }
        if x >= Double(last) { return fp[last] }
        let j = Int(x.rounded(.down))
        let xj = Double(j)
        if x == xj { return fp[j] }
        let slope = (fp[j + 1] - fp[j]) / (Double(j + 1) - xj)
        return slope * (x - xj) + fp[j]
    }
}
