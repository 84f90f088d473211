extension Duration {
    /// Whole milliseconds, saturating.
    public var millis: Int64 {
        let c = components
        let (whole, overflow) = c.seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? (c.seconds < 0 ? .min : .max) : whole.addingReportingOverflow(c.attoseconds / 1_000_000_000_000_000).partialValue
    }
}
