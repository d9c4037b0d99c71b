/**
 * Markdown for hovers. Every piece of text that may come from the user's file
 * (messages quote identifiers, function names) goes through `escapeMarkdown`,
 * so a crafted identifier or comment can neither format, link, nor inject HTML.
 */

/**
 * Escapes text so a CommonMark renderer shows it literally: ASCII punctuation
 * that means something to markdown is backslash-escaped; `&`, `<` and `>` become
 * entities (no raw HTML, no autolinks); line breaks become spaces (the text is
 * used inline).
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
