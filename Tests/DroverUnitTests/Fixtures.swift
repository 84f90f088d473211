import Foundation

/// Files under fleet-configs/, which the demo uses too.
enum Fixtures {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static func fleetConfig(_ relative: String) throws -> String {
        try String(contentsOfFile: root + "/fleet-configs/" + relative, encoding: .utf8)
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "drover-unit-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
