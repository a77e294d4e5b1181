package io.shardmap.core;

/**
 * Strings in Unicode code point order, which is the unsigned byte order of their UTF-8 (how etcd orders
 * keys, and how PostgreSQL orders text in the C collation). It differs from {@link String#compareTo}, which
 * compares UTF-16 units, once characters above U+FFFF meet characters in U+E000..U+FFFF.
 */
public final class CodePointOrder {
  private CodePointOrder() {}

  public static int compare(String a, String b) {
    int i = 0;
    int j = 0;
    while (i < a.length() && j < b.length()) {
      int ca = a.codePointAt(i);
      int cb = b.codePointAt(j);
      if (ca != cb) {
        return Integer.compare(ca, cb);
      }
      i += Character.charCount(ca);
      j += Character.charCount(cb);
    }
    return Integer.compare(a.length() - i, b.length() - j);
  }
}
