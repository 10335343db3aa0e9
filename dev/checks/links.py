#!/usr/bin/env python3
"""Every link of the project's Markdown manual resolves (run by scripts/check-deploy).

Checked files: README.md, docs/**/*.md and deploy/helm/polo-exporter/README.md.

- A relative link (`[text](path)`, `![alt](path)`, `[text][ref]` with `[ref]: path`) must name an
  existing file or folder inside the repository.
- An `#anchor` (alone, or after a path to a Markdown file) must be the slug of a heading of the
  target, by GitHub's rules: the heading's text lowercased, every character that is not a letter,
  digit, space, `-` or `_` dropped, each space turned into `-`; a repeated heading gets `-1`,
  `-2`, ... (explicit `<a id="...">`/`<a name="...">` anchors count too). On a file that is not
  Markdown only GitHub's line anchors (`#L10`, `#L10-L20`) are accepted.
- An external link (http, https, mailto) is not fetched (no network here) but must be
  well-formed: a scheme GitHub links, a host, no spaces. Any other scheme fails.

Links inside code spans and fenced code blocks are not links and are ignored. Before checking the
repository the script runs its own self-test (slug cases and a scratch tree of broken links that
must each be reported), so it cannot pass by accepting everything.

    python3 dev/checks/links.py             the check; exit status 1 on a broken link
    python3 dev/checks/links.py FILE...     only these files (paths relative to the repository)
"""
import glob
import os
import re
import sys
import tempfile
import unicodedata
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATTERNS = ["README.md", "docs/**/*.md", "deploy/helm/polo-exporter/README.md"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
REF_DEF = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*(<[^>]*>|\S+)")
LINE_ANCHOR = re.compile(r"^L\d+(?:C\d+)?(?:-L\d+(?:C\d+)?)?$")
HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?::\d+)?$")


# ------------------------------------------------------------------------------ Markdown
def prose_lines(text):
    """(line number, line) outside fenced code blocks and HTML comments."""
    fence = None
    in_comment = False
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
                fence = None
            continue
        if m:
            fence = m.group(1)
            continue
        if in_comment:
            if "-->" in line:
                in_comment = False
                line = line.split("-->", 1)[1]
            else:
                continue
        while "<!--" in line:
            before, after = line.split("<!--", 1)
            if "-->" in after:
                line = before + after.split("-->", 1)[1]
            else:
                line = before
                in_comment = True
        yield n, line


def strip_code_spans(line):
    """The line with the content of each code span blanked (backticks kept), so that brackets in
    code are not taken for links while positions and heading text stay."""
    out = []
    i = 0
    while i < len(line):
        if line[i] == "`":
            j = i
            while j < len(line) and line[j] == "`":
                j += 1
            ticks = line[i:j]
            end = line.find(ticks, j)
            # a run of backticks followed by more backticks is not the closing one
            while end >= 0 and end + len(ticks) < len(line) and line[end + len(ticks)] == "`":
                end = line.find(ticks, end + len(ticks) + 1)
            if end < 0:
                out.append(ticks)
                i = j
                continue
            out.append(ticks + " " * (end - j) + ticks)
            i = end + len(ticks)
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def heading_text(raw):
    """A heading's text as GitHub renders it, before slugging: links reduced to their text,
    images to their alt text, HTML tags removed."""
    parts = re.split(r"(`+[^`]*`+)", raw)
    for i in range(0, len(parts), 2):  # outside code spans (inside them `<name>` is text)
        text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", parts[i])
        text = re.sub(r"!?\[([^\]]*)\]\[[^\]]*\]", r"\1", text)
        parts[i] = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    return "".join(parts)


def slug(text):
    """GitHub's heading slug (github-slugger): lowercase, drop what is not a letter, mark, digit,
    connector punctuation (`_`), space or `-`, spaces to `-`."""
    out = []
    for ch in heading_text(text).strip().lower():
        if ch == " ":
            out.append("-")
        elif ch == "-" or ch == "_":
            out.append(ch)
        elif unicodedata.category(ch)[0] in "LMN" or unicodedata.category(ch) == "Pc":
            out.append(ch)
    return "".join(out)


def anchors(text):
    """Every anchor of a Markdown text: heading slugs with GitHub's duplicate suffixes, and
    explicit HTML anchors."""
    found = set()
    counts = {}
    previous = None
    for _, line in prose_lines(text):
        for m in HTML_ANCHOR.finditer(line):
            found.add(m.group(1))
        m = ATX.match(line)
        title = None
        if m and not line.lstrip().startswith("#!"):
            title = m.group(2) or ""
        elif previous is not None and previous.strip() and SETEXT.match(line) and not ATX.match(previous) \
                and not previous.lstrip().startswith(("|", "-", "*", ">")):
            title = previous.strip()
        previous = line
        if title is None:
            continue
        base = slug(title)
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(text):
    """[(line number, target)] of the inline, reference and autolinks of a Markdown text."""
    lines = list(prose_lines(text))
    defs = {}
    for _, line in lines:
        m = REF_DEF.match(line)
        if m:
            defs[m.group(1).strip().lower()] = m.group(2).strip("<>")
    out = []
    for n, line in lines:
        if REF_DEF.match(line):
            out.append((n, REF_DEF.match(line).group(2).strip("<>")))
            continue
        line = strip_code_spans(line)
        i = 0
        while True:
            start = line.find("[", i)
            if start < 0:
                break
            if start > 0 and line[start - 1] == "\\":
                i = start + 1
                continue
            # the matching ] (link texts may hold balanced brackets)
            depth, j = 0, start
            while j < len(line):
                if line[j] == "\\":
                    j += 2
                    continue
                if line[j] == "[":
                    depth += 1
                elif line[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(line):
                break
            label = line[start + 1:j]
            rest = line[j + 1:]
            if rest.startswith("("):
                depth, k = 0, j + 1
                while k < len(line):
                    if line[k] == "\\":
                        k += 2
                        continue
                    if line[k] == "(":
                        depth += 1
                    elif line[k] == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    k += 1
                inner = line[j + 2:k].strip()
                if inner.startswith("<") and ">" in inner:
                    target = inner[1:inner.index(">")]
                else:
                    words = inner.split(None, 1)
                    target = words[0] if words else ""
                    if len(words) > 1 and not re.fullmatch(r"(\"[^\"]*\"|'[^']*'|\([^)]*\))", words[1]):
                        target = inner + " (whitespace in the target)"
                out.append((n, target))
                i = k + 1
                continue
            if rest.startswith("["):
                end = rest.find("]")
                ref = (rest[1:end] or label).strip().lower() if end >= 0 else None
                if ref in defs:
                    i = j + 1 + end + 1
                    continue  # reported with its definition
                if ref is not None:
                    out.append((n, f"[{ref}] (undefined reference)"))
                i = j + 1
                continue
            i = start + 1
        for m in re.finditer(r"<((?:https?|mailto):[^>\s]*)>", line):
            out.append((n, m.group(1)))
    return out


# ------------------------------------------------------------------------------ checks
def external_problem(target):
    parsed = urllib.parse.urlsplit(target)
    if parsed.scheme == "mailto":
        return None if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", parsed.path) else "malformed mailto link"
    if parsed.scheme not in ("http", "https"):
        return f"scheme {parsed.scheme!r} is not one GitHub links"
    if not parsed.netloc or not HOST.match(parsed.netloc.rsplit("@", 1)[-1]):
        return "malformed URL: no valid host"
    if any(c.isspace() for c in target):
        return "malformed URL: contains whitespace"
    return None


class Repo:
    def __init__(self, root):
        self.root = os.path.realpath(root)
        self._anchors = {}

    def anchors_of(self, path):
        if path not in self._anchors:
            with open(path, encoding="utf-8") as f:
                self._anchors[path] = anchors(f.read())
        return self._anchors[path]

    def problem(self, source, target):
        """Why target, linked from the file source, does not resolve; None when it does."""
        if target.endswith("(undefined reference)"):
            return "reference link without a definition"
        if target.endswith("(whitespace in the target)"):
            return "malformed link: whitespace in the target (not a link on GitHub)"
        if not target:
            return "empty link target"
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target):
            return external_problem(target)
        if target.startswith("//"):
            return "protocol-relative URL"
        path_part, _, fragment = target.partition("#")
        path_part = urllib.parse.unquote(path_part.split("?", 1)[0])
        fragment = urllib.parse.unquote(fragment)
        if path_part == "":
            full = source
        elif path_part.startswith("/"):
            full = os.path.join(self.root, path_part.lstrip("/"))
        else:
            full = os.path.join(os.path.dirname(source), path_part)
        full = os.path.realpath(full)
        if os.path.commonpath([full, self.root]) != self.root:
            return "points outside the repository"
        if not os.path.exists(full):
            return f"{os.path.relpath(full, self.root)} does not exist"
        if "#" not in target:
            return None
        if os.path.isdir(full):
            return "an anchor on a folder"
        if not full.endswith((".md", ".markdown")):
            return None if LINE_ANCHOR.match(fragment) else f"anchor #{fragment} on a file that is not Markdown"
        if fragment not in self.anchors_of(full):
            return f"no heading with anchor #{fragment} in {os.path.relpath(full, self.root)}"
        return None


def files(root, only=()):
    if only:
        return [os.path.join(root, p) for p in only]
    found = set()
    for pattern in PATTERNS:
        found.update(glob.glob(os.path.join(root, pattern), recursive=True))
    return sorted(found)


def check(root, only=()):
    """[(file, line, target, problem)] of every broken link, and the number of links checked."""
    repo = Repo(root)
    broken = []
    count = 0
    for path in files(root, only):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for line, target in links(text):
            count += 1
            problem = repo.problem(os.path.realpath(path), target)
            if problem:
                broken.append((os.path.relpath(path, root), line, target, problem))
    return broken, count


# ------------------------------------------------------------------------------ self-test
SLUGS = {
    "Alerts, routing and dashboard": "alerts-routing-and-dashboard",
    "`sources.aws_cost` (off unless `enabled: true`)": "sourcesaws_cost-off-unless-enabled-true",
    "Source `collector_runs` (`polo.collector_runs`)": "source-collector_runs-polocollector_runs",
    "Web configuration (`--web.config.file`)": "web-configuration---webconfigfile",
    "Every `sources.<name>` section": "every-sourcesname-section",
    "Dashboard (`Polo System Status`, uid `polo-system-status`)": "dashboard-polo-system-status-uid-polo-system-status",
    "See [the runbooks](runbooks.md) ✓": "see-the-runbooks-",
    "Ünïcode Ärger": "ünïcode-ärger",
}


def self_test():
    """[problems] with the checker itself: known slugs, and a scratch tree whose broken links must
    each be reported while its good ones pass."""
    problems = [f"slug({k!r}) = {slug(k)!r}, expected {v!r}" for k, v in SLUGS.items() if slug(k) != v]
    with tempfile.TemporaryDirectory(prefix="links-self-test-") as root:
        os.makedirs(os.path.join(root, "docs", "sub"))
        with open(os.path.join(root, "docs", "target.md"), "w") as f:
            f.write("# Title\n\n## Same\n\n## Same\n\n## Same\n\n```\n## In code\n```\n\nSetext one\n---\n\n"
                    '<a id="explicit"></a>\n')
        with open(os.path.join(root, "code.rs"), "w") as f:
            f.write("fn main() {}\n")
        good = [
            "target.md", "target.md#title", "target.md#same", "target.md#same-1", "target.md#same-2",
            "target.md#setext-one", "target.md#explicit", "./sub", "../code.rs", "../code.rs#L1-L2",
            "#local", "https://example.com/a?b=c#d", "mailto:someone@example.com", "/docs/target.md#title",
        ]
        bad = [
            "missing.md", "target.md#nope", "target.md#same-3", "target.md#in-code", "#nowhere",
            "../../outside.md", "../code.rs#main", "sub#x", "https://exa mple.com", "http://", "ftp://example.com/x",
            "https:example.com",
        ]
        lines = ["# Local", ""]
        lines += [f"Good {i}: [g]({t})." for i, t in enumerate(good)]
        lines += [f"Bad {i}: [b]({t})." for i, t in enumerate(bad)]
        lines += ["Code is no link: `[x](missing.md)`.", "", "```", "[x](missing-in-fence.md)", "```",
                  "Reference: [r][def], [undefined][nothing].", "", "[def]: also-missing.md"]
        with open(os.path.join(root, "docs", "index.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        broken, count = check(root, ["docs/index.md"])
        got = {t for _, _, t, _ in broken}
        want = (set(bad) - {"https://exa mple.com"}) | {"also-missing.md", "[nothing] (undefined reference)",
                                                      "https://exa mple.com (whitespace in the target)"}
        if got != want:
            problems.append(f"self-test: reported {sorted(got)}, expected {sorted(want)}")
        if count != len(good) + len(bad) + 2:
            problems.append(f"self-test: {count} links found, expected {len(good) + len(bad) + 2}")
    return problems


def main(argv):
    problems = self_test()
    if problems:
        print("FAIL the link checker's self-test:")
        for p in problems:
            print("     " + p)
        return 1
    broken, count = check(ROOT, argv)
    for path, line, target, problem in broken:
        print(f"{path}:{line}: ({target}): {problem}")
    n_files = len(files(ROOT, argv))
    print(f"links: {count} links in {n_files} files, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
