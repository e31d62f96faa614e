/// XMP packets carrying a `ProvenanceRecord`: a new packet, or an existing one (from the input image) kept and
/// extended. The record is one rdf:Description with `Iptc4xmpExt:DigitalSourceType` and diffedit's properties;
/// an existing packet keeps every other property. A DigitalSourceType already there is replaced (the property
/// is single-valued: the newest step decides it), and an earlier diffedit record moves, with its source type,
/// into `diffedit:History` (an rdf:Seq, oldest first), so a generated-then-edited image says both.
public enum XMPPacket {
    public static let rdfNS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
    public static let iptcExtNS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    public static let diffeditNS = "urn:diffedit:xmp:1.0:"
    /// The xpacket header's id, fixed by the XMP specification.
    static let packetBegin = "<?xpacket begin=\"\u{FEFF}\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>"
    static let packetEnd = "<?xpacket end=\"w\"?>"

    /// A packet holding only the record.
    public static func make(_ record: ProvenanceRecord) -> String {
        let rdf = XMLElement("rdf:RDF", attributes: [("xmlns:rdf", rdfNS)], children: [.text("\n"), .element(description(record, history: [])), .text("\n")])
        let meta = XMLElement("x:xmpmeta", attributes: [("xmlns:x", "adobe:ns:meta/")], children: [.text("\n"), .element(rdf), .text("\n")])
        return XMLTree(prolog: [.other(packetBegin), .text("\n")], root: meta, epilog: [.text("\n"), .other(packetEnd)]).serialized()
    }

    /// `existing` extended with the record. Throws `XMLTree.ParseError` when `existing` cannot be read
    /// (malformed XML, or no rdf:RDF element): the caller then writes `make(record)` and says so.
    public static func extend(_ existing: String, with record: ProvenanceRecord) throws -> String {
        var tree = try XMLTree(parsing: existing)
        var scope: [String: String] = [:]
        guard let rdf = findRDF(tree.root, scope: &scope) else {
            throw XMLTree.ParseError(description: "no rdf:RDF element")
        }
        var history: [XMLTreeNode] = []
        for case .element(let d) in rdf.children where d.localName == "Description" {
            var ns = scope
            declare(d, into: &ns)
            history += takeRecord(from: d, ns: ns)
        }
        rdf.children.append(.element(description(record, history: history)))
        rdf.children.append(.text("\n"))
        if tree.prolog.isEmpty { tree.prolog = [.other(packetBegin), .text("\n")] }
        if tree.epilog.isEmpty { tree.epilog = [.text("\n"), .other(packetEnd)] }
        return tree.serialized()
    }

    /// The record's properties read back from a packet: the last rdf:Description that carries diffedit's
    /// properties or a DigitalSourceType, as (local name, text) pairs; lists (LoRAs, ControlNets, History)
    /// give one pair per item. Throws when the packet does not parse.
    public static func read(_ packet: String) throws -> [(String, String)] {
        let tree = try XMLTree(parsing: packet)
        var scope: [String: String] = [:]
        guard let rdf = findRDF(tree.root, scope: &scope) else { throw XMLTree.ParseError(description: "no rdf:RDF element") }
        var best: [(String, String)] = []
        for case .element(let d) in rdf.children where d.localName == "Description" {
            var ns = scope
            declare(d, into: &ns)
            var out: [(String, String)] = []
            for (k, v) in d.attributes {
                let (uri, local) = resolve(k, ns)
                if uri == iptcExtNS && local == "DigitalSourceType" || uri == diffeditNS { out.append((local, XMLTree.unescape(v))) }
            }
            for e in d.elements {
                var ens = ns
                declare(e, into: &ens)
                let (uri, local) = resolve(e.name, ens)
                guard uri == iptcExtNS && local == "DigitalSourceType" || uri == diffeditNS else { continue }
                let items = e.elements.first.map { $0.elements.filter { $0.localName == "li" } } ?? []
                if items.isEmpty {
                    out.append((local, e.attribute("rdf:resource") ?? e.text))
                } else {
                    for li in items {
                        let sub = li.elements.map { "\($0.localName)=\($0.text)" }
                        out.append((local, sub.isEmpty ? li.text : sub.joined(separator: " ")))
                    }
                }
            }
            if !out.isEmpty { best = out }
        }
        return best
    }

    // MARK: - building

    static func description(_ r: ProvenanceRecord, history: [XMLTreeNode]) -> XMLElement {
        let d = XMLElement("rdf:Description", attributes: [
            ("xmlns:rdf", rdfNS), ("rdf:about", ""), ("xmlns:Iptc4xmpExt", iptcExtNS), ("xmlns:diffedit", diffeditNS),
        ])
        func prop(_ name: String, _ value: String) {
            d.children.append(.text("\n  "))
            d.children.append(.element(XMLElement(name, children: value.isEmpty ? [] : [.text(XMLTree.escape(value))])))
        }
        func seq(_ name: String, _ items: [XMLTreeNode]) {
            guard !items.isEmpty else { return }
            let s = XMLElement("rdf:Seq", children: items)
            d.children.append(.text("\n  "))
            d.children.append(.element(XMLElement(name, children: [.element(s)])))
        }
        func adapters(_ list: [ProvenanceRecord.Adapter]) -> [XMLTreeNode] {
            list.map { a in
                var c: [XMLTreeNode] = [.element(XMLElement("diffedit:Name", children: [.text(XMLTree.escape(a.name))])),
                                        .element(XMLElement("diffedit:Scale", children: [.text(ProvenanceRecord.number(a.scale))]))]
                if let h = a.sha256 { c.append(.element(XMLElement("diffedit:SHA256", children: [.text(h)]))) }
                return .element(XMLElement("rdf:li", attributes: [("rdf:parseType", "Resource")], children: c))
            }
        }
        for (k, v) in r.fields {
            switch k {
            case "DigitalSourceType": prop("Iptc4xmpExt:DigitalSourceType", v)
            case "LoRA", "ControlNet": continue
            case "Watermark":
                seq("diffedit:LoRAs", adapters(r.loras))
                seq("diffedit:ControlNets", adapters(r.controlNets))
                prop("diffedit:Watermark", v)
            default: prop("diffedit:" + k, v)
            }
        }
        seq("diffedit:History", history)
        d.children.append(.text("\n"))
        return d
    }

    // MARK: - reading an existing packet

    /// Adds the xmlns declarations of `e` to `ns` (prefix -> URI; "" for the default namespace).
    static func declare(_ e: XMLElement, into ns: inout [String: String]) {
        for (k, v) in e.attributes {
            if k == "xmlns" { ns[""] = XMLTree.unescape(v) }
            else if k.hasPrefix("xmlns:") { ns[String(k.dropFirst(6))] = XMLTree.unescape(v) }
        }
    }

    static func resolve(_ qname: String, _ ns: [String: String]) -> (String?, String) {
        let parts = qname.split(separator: ":", maxSplits: 1).map(String.init)
        if parts.count == 2 { return (ns[parts[0]], parts[1]) }
        return (ns[""], qname)
    }

    /// The rdf:RDF element (by namespace), depth first; `scope` receives the declarations above and on it.
    static func findRDF(_ e: XMLElement, scope: inout [String: String]) -> XMLElement? {
        var ns = scope
        declare(e, into: &ns)
        if resolve(e.name, ns) == (rdfNS, "RDF") { scope = ns; return e }
        for c in e.elements {
            var s = ns
            if let r = findRDF(c, scope: &s) { scope = s; return r }
        }
        return nil
    }

    /// Removes a Description's DigitalSourceType and diffedit properties and returns them as History items:
    /// the items of its own diffedit:History first, then one item for the record it held (if any).
    static func takeRecord(from d: XMLElement, ns: [String: String]) -> [XMLTreeNode] {
        var earlier: [XMLTreeNode] = [], current: [XMLTreeNode] = []
        var keptAttributes: [(String, String)] = []
        for (k, v) in d.attributes {
            let (uri, local) = resolve(k, ns)
            if uri == iptcExtNS && local == "DigitalSourceType" || uri == diffeditNS && !k.hasPrefix("xmlns") {
                current.append(.element(XMLElement("diffedit:" + local, children: [.text(v)])))
            } else {
                keptAttributes.append((k, v))
            }
        }
        d.attributes = keptAttributes
        var kept: [XMLTreeNode] = []
        for c in d.children {
            guard case .element(let e) = c else { kept.append(c); continue }
            var ens = ns
            declare(e, into: &ens)
            let (uri, local) = resolve(e.name, ens)
            if uri == diffeditNS && local == "History" {
                for s in e.elements { earlier += s.children.filter { if case .element = $0 { return true } else { return false } } }
            } else if uri == iptcExtNS && local == "DigitalSourceType" {
                current.append(.element(XMLElement("diffedit:DigitalSourceType", children: e.children)))
            } else if uri == diffeditNS {
                renamePrefix(e, ens)
                current.append(.element(e))
            } else {
                kept.append(c)
            }
        }
        // drop the whitespace left between removed properties
        d.children = kept.enumerated().filter { i, n in
            if case .text(let t) = n, t.allSatisfy({ $0.isWhitespace }), i + 1 < kept.count, case .text = kept[i + 1] { return false }
            return true
        }.map { $0.1 }
        if current.isEmpty { return earlier }
        let li = XMLElement("rdf:li", attributes: [("rdf:parseType", "Resource")], children: current)
        return earlier + [.element(li)]
    }

    /// Gives diffedit-namespace elements the "diffedit:" prefix (the new Description declares it) and
    /// RDF-namespace ones "rdf:", recursively.
    static func renamePrefix(_ e: XMLElement, _ ns: [String: String]) {
        var ens = ns
        declare(e, into: &ens)
        let (uri, local) = resolve(e.name, ens)
        if uri == diffeditNS { e.name = "diffedit:" + local } else if uri == rdfNS { e.name = "rdf:" + local }
        e.attributes = e.attributes.map { (k, v) in
            let (u, l) = resolve(k, ens)
            if u == rdfNS && !k.hasPrefix("xmlns") { return ("rdf:" + l, v) }
            return (k, v)
        }
        for c in e.elements { renamePrefix(c, ens) }
    }
}
