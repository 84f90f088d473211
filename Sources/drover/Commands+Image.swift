import ArgumentParser
import DroverAPI
import DroverCore
import Foundation

struct ImageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image", abstract: "Images in the controller's registry: push, list, remove.", subcommands: [List.self, ImagePush.self, Remove.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List images, their digests, sizes and the workloads that use them.")
        @OptionGroup var options: GlobalOptions

        func run() async {
            let (images, data) = await options.client.get("/v1/images", as: [ImageView].self)
            Output.print(data, format: options.output) {
                [["IMAGE", "DIGEST", "SIZE", "USED BY"]]
                    + images.map { ["\($0.name):\($0.tag)", String($0.digest.prefix(19)), Quantity.formatMemory($0.size), $0.usedBy.isEmpty ? "-" : $0.usedBy.joined(separator: ",")] }
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a tag; refused while a workload uses its image.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "NAME:TAG") var image: String

        func run() async {
            let query = image.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+"))) ?? image
            _ = await options.client.send("DELETE", "/v1/images?ref=\(query)")
            print("image \(image) removed")
        }
    }
}
