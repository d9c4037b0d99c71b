/**
 * Markdown for hovers. Every piece of text that may come from the user's file
 * (messages quote identifiers, function names) goes through `escapeMarkdown`,
 * so a crafted identifier or comment can neither format, link, nor inject HTML.
 */

/** Bidi embeddings, overrides, isolates and marks. */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/**
 * Escapes text so a CommonMark renderer shows it literally: ASCII punctuation
 * that means something to markdown is backslash-escaped; `&`, `<` and `>` become
 * entities (no raw HTML, no autolinks); line breaks become spaces (the text is
 * used inline); bidi controls become a visible `\u202e` (they cannot reorder
 * the hover).
 */
export function escapeMarkdown(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    switch (c) {
      case '&':
        out += '&amp;';
        break;
      case '<':
        out += '&lt;';
        break;
      case '>':
        out += '&gt;';
        break;
      case '\r':
        if (text[i + 1] === '\n') i++;
        out += ' ';
        break;
      case '\n':
        out += ' ';
        break;
      case '\\':
      case '`':
      case '*':
      case '_':
      case '{':
      case '}':
      case '[':
      case ']':
      case '(':
      case ')':
      case '#':
      case '+':
      case '-':
      case '.':
      case '!':
      case '|':
      case '~':
      case ':':
        out += '\\' + c;
        break;
      default: {
        const code = c.charCodeAt(0);
        // Other C0 controls and DEL: drop rather than render oddly.
        if (code < 0x20 && c !== '\t') out += ' ';
        else if (code === 0x7f) out += ' ';
        // Bidi embeddings, overrides, isolates and marks would reorder what is shown: make them visible.
        else if (BIDI.test(c)) out += '\\\\u' + code.toString(16).padStart(4, '0');
        else out += c;
      }
    }
  }
  return out;
}

/**
 * A link destination safe inside `[text](...)`: no spaces, parentheses or
 * angle brackets, and only URL schemes the hover is meant to carry.
 */
export function markdownLinkTarget(url: string): string | undefined {
  if (!/^(file|https?):/i.test(url)) return undefined;
  return url.replace(/[\s()<>\\"'`]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

/**
 * A `command:` link target for `[text](...)`: the arguments are JSON,
 * URI-encoded; the characters encodeURIComponent leaves alone but that could
 * end or confuse a markdown link (`( ) ' ! *`) are percent-encoded too.
 * Only for command ids of our own (letters, digits, dots).
 */
export function commandLinkTarget(command: string, args: readonly unknown[]): string | undefined {
  if (!/^[A-Za-z][A-Za-z0-9.]*$/.test(command)) return undefined;
  const query = encodeURIComponent(JSON.stringify(args)).replace(
    /[!'()*]/g,
    (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'),
  );
  return `command:${command}?${query}`;
}
