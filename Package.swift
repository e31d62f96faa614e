// swift-tools-version:6.0
// diffedit — text-guided image and video editing with diffusion models.
// No Swift package dependencies: system C libraries come in through system-library targets.
import PackageDescription

// The Swift runtime is linked in statically by the Makefile (-Xswiftc -static-stdlib on every build), not by a
// target setting: the test bundle links DiffEditC too (the C ABI is called in-process by EntryPointEqualityTests).

let package = Package(
    name: "diffedit",
    products: [
        .library(name: "DiffEdit", targets: ["DiffEdit"]),
        // libdiffedit.so: the stable C ABI (include/diffedit.h). The Makefile links it with a version
        // script and SONAME; see `make lib`.
        .library(name: "diffeditc", type: .dynamic, targets: ["DiffEditC"]),
        .executable(name: "diffedit", targets: ["diffedit"]),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "CSources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", path: "CSources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", path: "CSources/CJPEG",
                       providers: [.apt(["libjpeg-dev"])]),
        // include/diffedit.h as a Swift module (types only) for the C ABI exports.
        .systemLibrary(name: "CDiffEditABI", path: "CSources/CDiffEditABI"),
        .target(
            name: "CDiffKernels",
            dependencies: ["COpenBLAS"],
            path: "CSources/CDiffKernels",
            cSettings: [.unsafeFlags(["-O3", "-march=x86-64-v3", "-fno-math-errno", "-fvisibility=hidden"])],
            linkerSettings: [.linkedLibrary("pthread"), .linkedLibrary("dl"), .linkedLibrary("m")]
        ),
        // PNG / JPEG file reading and writing (de_image.h), for Sources/DiffEdit/IO/ImageFile.swift.
        .target(
            name: "CImageCodec",
            dependencies: ["CPNG", "CJPEG"],
            path: "CSources/CImageCodec",
            cSettings: [.unsafeFlags(["-O2", "-fvisibility=hidden"])]
        ),
        // The CLIP BPE merges embedded as a byte array (tools/embed_clip_bpe.py), for checkpoints without tokenizer files.
        .target(name: "CClipBPE", path: "CSources/CClipBPE"),
        .target(
            name: "DiffEdit",
            dependencies: ["CDiffKernels", "CImageCodec", "CPNG", "CJPEG", "CClipBPE", "COpenBLAS"],
            path: "Sources/DiffEdit"
        ),
        .target(
            name: "DiffEditC",
            dependencies: ["DiffEdit", "CDiffEditABI"],
            path: "Sources/DiffEditC"
        ),
        // Benchmark-only code (random-weight models, the edit benchmark): the CLI's `bench` and
        // `edit --bench`, and the tests; not part of the DiffEdit library.
        .target(
            name: "DiffEditBench",
            dependencies: ["DiffEdit"],
            path: "Sources/DiffEditBench"
        ),
        .executableTarget(
            name: "diffedit",
            dependencies: ["DiffEdit", "DiffEditBench"],
            path: "Sources/diffedit"
        ),
        .testTarget(
            name: "DiffEditTests",
            dependencies: ["DiffEdit", "DiffEditBench", "CDiffKernels", "DiffEditC", "CDiffEditABI"],
            path: "Tests/DiffEditTests",
            resources: []
        ),
    ]
)
