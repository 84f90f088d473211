import DroverCore
import DroverScheduler
import Testing

@Suite("Autoscaler")
struct AutoscalerTests {
    let spec = AutoscaleSpec(minReplicas: 1, maxReplicas: 5, targetCPUPercent: 50, stabilizationSeconds: 30)

    @Test("scales up at once in proportion to use over target, within maxReplicas")
    func up() {
        var a = Autoscaler()
        #expect(a.recommend(spec, current: 2, utilization: [100, 100], now: 0) == 4)
        var b = Autoscaler()
        #expect(b.recommend(spec, current: 2, utilization: [900, 900], now: 0) == 5)
    }

    @Test("without figures it holds the current count, clamped to the bounds")
    func noData() {
        var a = Autoscaler()
        #expect(a.recommend(spec, current: 3, utilization: [], now: 0) == 3)
        #expect(a.recommend(spec, current: 9, utilization: [], now: 0) == 5)
    }

    @Test("scales down only after a whole stabilisation window of lower recommendations")
    func downAfterWindow() {
        var a = Autoscaler()
        #expect(a.recommend(spec, current: 4, utilization: [10, 10, 10, 10], now: 0) == 4)
        #expect(a.recommend(spec, current: 4, utilization: [10, 10, 10, 10], now: 20_000) == 4)
        #expect(a.recommend(spec, current: 4, utilization: [10, 10, 10, 10], now: 31_000) == 1)
    }

    @Test("a spike inside the window keeps the count up: no flapping")
    func noFlap() {
        var a = Autoscaler()
        _ = a.recommend(spec, current: 4, utilization: [10, 10, 10, 10], now: 0)
        _ = a.recommend(spec, current: 4, utilization: [50, 50, 50, 50], now: 10_000)
        #expect(a.recommend(spec, current: 4, utilization: [10, 10, 10, 10], now: 31_000) == 4)
        #expect(a.recommend(spec, current: 4, utilization: [10, 10, 10, 10], now: 45_000) == 1)
    }
}
