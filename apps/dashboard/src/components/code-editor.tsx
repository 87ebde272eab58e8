import { useMemo, useRef } from 'preact/hooks';
import type { Interpreter } from '@app/protocol/constants.js';

/**
 * A textarea that behaves enough like an editor: monospace, line numbers, Tab / Shift+Tab indent,
 * Enter keeps the indentation, Esc then Tab leaves the field (so keyboard users are never trapped).
 */
export function CodeEditor(props: {
  value: string;
  onChange: (v: string) => void;
  interpreter: Interpreter;
  readOnly?: boolean;
  rows?: number;
  testid?: string;
  onSave?: () => void;
}) {
  const ta = useRef<HTMLTextAreaElement>(null);
  const gutter = useRef<HTMLDivElement>(null);
  const escaped = useRef(false);
  const indent = props.interpreter === 'python3' ? '    ' : '  ';
  const lineCount = useMemo(() => props.value.split('\n').length, [props.value]);

  const replace = (el: HTMLTextAreaElement, start: number, end: number, text: string, selStart: number, selEnd: number) => {
    el.setRangeText(text, start, end, 'preserve');
    el.setSelectionRange(selStart, selEnd);
    props.onChange(el.value);
  };

  const onKeyDown = (e: KeyboardEvent) => {
    const el = e.currentTarget as HTMLTextAreaElement;
    if ((e.ctrlKey || e.metaKey) && e.key === 's' && props.onSave) {
      e.preventDefault();
      props.onSave();
      return;
    }
    if (e.key === 'Escape') {
      escaped.current = true;
      return;
    }
    if (props.readOnly) return;
    const { selectionStart: s, selectionEnd: end, value } = el;
    if (e.key === 'Tab' && !escaped.current) {
      e.preventDefault();
      const lineStart = value.lastIndexOf('\n', s - 1) + 1;
      if (!e.shiftKey && s === end) {
        replace(el, s, end, indent, s + indent.length, s + indent.length);
        return;
      }
      // Indent or dedent every line the selection touches.
      const block = value.slice(lineStart, end);
      const lines = block.split('\n');
      const changed = lines.map((l) => (e.shiftKey ? l.replace(new RegExp(`^( {1,${indent.length}}|\\t)`), '') : indent + l));
      const text = changed.join('\n');
      const firstDelta = changed[0]!.length - lines[0]!.length;
      replace(el, lineStart, end, text, Math.max(lineStart, s + firstDelta), lineStart + text.length);
      return;
    }
    escaped.current = false;
    if (e.key === 'Enter' && s === end) {
      e.preventDefault();
      const lineStart = value.lastIndexOf('\n', s - 1) + 1;
      const lead = /^[ \t]*/.exec(value.slice(lineStart, s))?.[0] ?? '';
      replace(el, s, end, `\n${lead}`, s + 1 + lead.length, s + 1 + lead.length);
    }
  };

  return (
    <div class={`code-editor${props.readOnly ? ' readonly' : ''}`}>
      <div class="gutter" ref={gutter} aria-hidden="true">
        {Array.from({ length: lineCount }, (_, i) => (
          <div key={i}>{i + 1}</div>
        ))}
      </div>
      <textarea
        ref={ta}
        value={props.value}
        readOnly={props.readOnly}
        rows={props.rows ?? 18}
        wrap="off"
        spellcheck={false}
        autoCapitalize="off"
        autoComplete="off"
        data-testid={props.testid}
        onInput={(e) => props.onChange(e.currentTarget.value)}
        onKeyDown={onKeyDown}
        onScroll={(e) => {
          if (gutter.current) gutter.current.scrollTop = e.currentTarget.scrollTop;
        }}
      />
    </div>
  );
}
