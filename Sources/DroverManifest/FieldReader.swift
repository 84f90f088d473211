import DroverCore

/// Reads loosely typed YAML values into typed fields, collecting an error with the field's
/// path for everything that does not fit.
struct FieldReader {
    var errors: [FieldError] = []

    mutating func fail(_ path: String, _ reason: String) {
        errors.append(FieldError(path: path, reason: reason))
    }

    mutating func object(_ value: Any?, _ path: String, optional: Bool = false) -> [String: Any]? {
        switch value {
        case nil:
            if !optional { fail(path, "is required") }
            return nil
        case let dict as [String: Any]:
            return dict
        case let dict as [AnyHashable: Any]:
            var out: [String: Any] = [:]
            for (k, v) in dict {
                guard let key = k.base as? String else {
                    fail(path, "keys must be strings")
                    return nil
                }
                out[key] = v
            }
            return out
        default:
            fail(path.isEmpty ? "(document)" : path, "must be a mapping")
            return nil
        }
    }

    /// Unknown fields are errors, not silently ignored: `replica: 3` is a typo that must not
    /// quietly become one replica.
    mutating func allowOnly(_ dict: [String: Any], _ keys: Set<String>, at path: String) {
        for key in dict.keys.sorted() where !keys.contains(key) {
            fail(path.isEmpty ? key : "\(path).\(key)", "unknown field (allowed: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    mutating func string(_ value: Any?, _ path: String) -> String? {
        guard let value else {
            fail(path, "is required")
            return nil
        }
        guard let s = value as? String else {
            fail(path, "must be a string")
            return nil
        }
        return s
    }

    mutating func int(_ value: Any?, _ path: String) -> Int? {
        guard let i = value as? Int else {
            fail(path, value == nil ? "is required" : "must be a whole number")
            return nil
        }
        return i
    }

    mutating func enumValue<E: RawRepresentable & CaseIterable>(_ value: Any?, _ path: String, default def: E) -> E?
    where E.RawValue == String {
        guard let value else { return def }
        guard let s = value as? String, let e = E(rawValue: s) else {
            fail(path, "must be one of \(E.allCases.map(\.rawValue).joined(separator: ", ")), found '\(scalarText(value))'")
            return nil
        }
        return e
    }

    mutating func stringList(_ value: Any?, _ path: String) -> [String]? {
        switch value {
        case nil:
            fail(path, "is required")
            return nil
        case let s as String:
            fail(path, "must be a list of strings, e.g. [\"/bin/sh\", \"-c\", \"\(s)\"]")
            return nil
        case let list as [Any]:
            var out: [String] = []
            for (i, item) in list.enumerated() {
                guard item is String || item is Int || item is Double else {
                    fail("\(path)[\(i)]", "must be a string")
                    continue
                }
                out.append(scalarText(item))
            }
            return out
        default:
            fail(path, "must be a list of strings")
            return nil
        }
    }

    /// A mapping of strings; numbers and booleans are taken as their text (`PORT: 8080`).
    mutating func stringMap(_ value: Any?, _ path: String) -> [String: String] {
        guard value != nil, let dict = object(value, path) else { return [:] }
        var out: [String: String] = [:]
        for (k, v) in dict {
            guard v is String || v is Int || v is Double || v is Bool else {
                fail("\(path).\(k)", "must be a string")
                continue
            }
            out[k] = scalarText(v)
        }
        return out
    }
}
