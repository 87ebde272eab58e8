import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { OutputBuffer } from './output-buffer.js';

/** Fixed line height (px) so the window of visible lines is plain arithmetic. Keep in step with styles.css. */
export const LINE_HEIGHT = 20;
const OVERSCAN = 30;

/**
 * A virtualized view of the output: only the lines in (and near) the viewport are in the DOM, so
 * 100,000 lines cost what 100 do. Follows the tail until the viewer scrolls up; scrolling back to
 * the bottom (or the button) resumes following.
 */
export function OutputPane({ buffer, version, empty }: { buffer: OutputBuffer; version: number; empty?: ComponentChildren }) {
  const el = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  const [follow, setFollow] = useState(true);
  const followRef = useRef(true);
  followRef.current = follow;
  const total = buffer.lines.length;

  useEffect(() => {
    const node = el.current;
    if (!node) return;
    const ro = new ResizeObserver(() => setHeight(node.clientHeight));
    ro.observe(node);
    setHeight(node.clientHeight);
    return () => ro.disconnect();
  }, []);

  // After each batch of new lines: stick to the bottom while following.
  useLayoutEffect(() => {
    const node = el.current;
    if (node && followRef.current) {
      node.scrollTop = node.scrollHeight;
      setScrollTop(node.scrollTop);
    }
  }, [version, total, height]);

  const atBottom = (node: HTMLDivElement) => node.scrollHeight - node.scrollTop - node.clientHeight <= LINE_HEIGHT;

  const onScroll = () => {
    const node = el.current;
    if (!node) return;
    setScrollTop(node.scrollTop);
    const bottom = atBottom(node);
    if (bottom !== followRef.current) setFollow(bottom);
  };
  // An upward wheel or key stops following at once, even while new lines keep the view at the bottom.
  const stopFollowing = () => {
    if (followRef.current) setFollow(false);
  };
  const jump = () => {
    setFollow(true);
    const node = el.current;
    if (node) node.scrollTop = node.scrollHeight;
  };

  const first = Math.max(0, Math.floor(scrollTop / LINE_HEIGHT) - OVERSCAN);
  const last = Math.min(total, Math.ceil((scrollTop + height) / LINE_HEIGHT) + OVERSCAN);
  const visible = [];
  for (let i = first; i < last; i++) {
    const line = buffer.lines[i]!;
    visible.push(
      <div key={i} class={`line ${line.stream}`} data-testid="output-line" data-stream={line.stream}>
        <span class="ln">{i + 1}</span>
        <span class="txt" dangerouslySetInnerHTML={{ __html: line.html || ' ' }} />
      </div>,
    );
  }

  return (
    <div class="output-wrap">
      <div
        class="output"
        ref={el}
        tabIndex={0}
        data-testid="output-pane"
        data-lines={total}
        data-following={follow ? 'true' : 'false'}
        onScroll={onScroll}
        onWheel={(e) => e.deltaY < 0 && stopFollowing()}
        onKeyDown={(e) => ['ArrowUp', 'PageUp', 'Home'].includes(e.key) && stopFollowing()}
        aria-label="Execution output"
      >
        {total === 0 ? (
          <div class="output-empty">{empty}</div>
        ) : (
          <div class="output-spacer" style={{ height: `${total * LINE_HEIGHT}px` }}>
            <div class="output-window" style={{ transform: `translateY(${first * LINE_HEIGHT}px)` }}>
              {visible}
            </div>
          </div>
        )}
      </div>
      {!follow && total > 0 && (
        <button type="button" class="btn btn-small jump" onClick={jump} data-testid="jump-to-bottom">
          ↓ Jump to bottom
        </button>
      )}
    </div>
  );
}
