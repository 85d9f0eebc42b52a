/**
 * The review rules (seed S5.1, S5.3) as data: each has a stable id, a category, a severity,
 * the MITRE ATLAS technique it maps to, what it looks at, and a pattern. The engine
 * (scan.ts) is generic; adding a rule is adding a row here and a case to the corpus.
 *
 * Targets: `description` (the tool's description and every parameter description, where
 * poisoning hides), `text` (name + descriptions, for privacy), `param_name` (each
 * parameter's name), `param` (a parameter's schema: see `check`).
 */
export type Severity = 'low' | 'medium' | 'high' | 'critical';
export type Category = 'vulnerability' | 'poisoning' | 'shadowing' | 'resource' | 'privacy';

export interface PatternRule {
  readonly id: string;
  readonly title: string;
  readonly category: Category;
  readonly severity: Severity;
  /** MITRE ATLAS technique id. */
  readonly atlas: string;
  readonly target: 'description' | 'text' | 'param_name';
  /** A regular expression source, compiled with flags `iu` unless `flags` says otherwise. */
  readonly pattern: string;
  readonly flags?: string;
}

export interface ParamRule {
  readonly id: string;
  readonly title: string;
  readonly category: Category;
  readonly severity: Severity;
  readonly atlas: string;
  readonly target: 'param';
  /** A structural check of one parameter's JSON Schema, named for the engine. */
  readonly check: 'unbounded_string' | 'unbounded_integer' | 'unbounded_array' | 'free_object';
  /** Only parameters whose name matches this (regex source, `i`) are checked; all if absent. */
  readonly nameFilter?: string;
}

export type Rule = PatternRule | ParamRule;

const SECRET_PLACES = String.raw`(?:~\/\.ssh|\.ssh\/|id_rsa|id_ed25519|\.env\b|\.aws\/|credentials?\b|secrets?\b|api[ _-]?keys?|access[ _-]?tokens?|tokens?\b|passwords?|private[ _-]?keys?|mcp\.json|\.cursor\/|\.npmrc|\.netrc|\/etc\/passwd|\/etc\/shadow|keychain|wallet|seed phrase|conversation history|system prompt)`;

export const RULES: readonly Rule[] = [
  // (b) tool poisoning: text hidden from the person, read by the model.
  { id: 'SP-POISON-TAGS', title: 'Unicode tag characters (invisible ASCII smuggling)', category: 'poisoning', severity: 'critical', atlas: 'AML.T0068', target: 'description', pattern: '[\\u{E0000}-\\u{E007F}]', flags: 'u' },
  { id: 'SP-POISON-ZW', title: 'zero-width characters', category: 'poisoning', severity: 'high', atlas: 'AML.T0068', target: 'description', pattern: '[\\u200B-\\u200D\\u2060-\\u2064\\uFEFF\\u180E\\u00AD]', flags: 'u' },
  { id: 'SP-POISON-BIDI', title: 'bidirectional control characters', category: 'poisoning', severity: 'high', atlas: 'AML.T0068', target: 'description', pattern: '[\\u202A-\\u202E\\u2066-\\u2069\\u200E\\u200F\\u061C]', flags: 'u' },
  { id: 'SP-POISON-HTMLCOMMENT', title: 'HTML comment in a description', category: 'poisoning', severity: 'high', atlas: 'AML.T0051.001', target: 'description', pattern: '<!--' },
  { id: 'SP-POISON-MDCOMMENT', title: 'Markdown comment (link reference used as a comment)', category: 'poisoning', severity: 'high', atlas: 'AML.T0051.001', target: 'description', pattern: '^[ \\t]*\\[[^\\]\\n]*\\]:[ \\t]*(?:#|<>)', flags: 'imu' },
  { id: 'SP-POISON-BASE64', title: 'base64 blob in a description', category: 'poisoning', severity: 'high', atlas: 'AML.T0068', target: 'description', pattern: '[A-Za-z0-9+/]{40,}={0,2}', flags: 'u' },
  { id: 'SP-POISON-PSEUDOTAG', title: '<IMPORTANT>-style pseudo-tag addressed to the model', category: 'poisoning', severity: 'high', atlas: 'AML.T0051.001', target: 'description', pattern: '<\\s*\\/?\\s*(?:important|system|instructions?|admin|hidden|secret|note\\s+to\\s+(?:the\\s+)?(?:ai|assistant|model)|assistant|ai|prompt|context|override)\\s*>|\\[\\s*(?:system|important|instructions?)\\s*\\]' },
  { id: 'SP-POISON-IGNORE', title: 'instruction to ignore earlier instructions', category: 'poisoning', severity: 'critical', atlas: 'AML.T0051.001', target: 'description', pattern: '\\b(?:ignore|disregard|forget|override|bypass)\\b[^.\\n]{0,40}\\b(?:previous|prior|above|earlier|all|other|system|safety|original)\\b[^.\\n]{0,20}\\b(?:instructions?|rules?|prompts?|guidelines?|directives?|policies|constraints?)' },
  { id: 'SP-POISON-CONCEAL', title: 'instruction to keep something from the user', category: 'poisoning', severity: 'critical', atlas: 'AML.T0051.001', target: 'description', pattern: "\\b(?:do\\s*n[o']?t|never|don't)\\s+(?:tell|inform|mention|reveal|show|notify|alert|disclose)\\b[^.\\n]{0,30}\\b(?:the\\s+)?users?\\b|\\bwithout\\s+(?:telling|informing|notifying|asking)\\s+(?:the\\s+)?users?\\b|\\b(?:silently|secretly|covertly|quietly)\\b" },
  { id: 'SP-POISON-ADDRESS', title: 'imperative text addressed to the model', category: 'poisoning', severity: 'high', atlas: 'AML.T0051.001', target: 'description', pattern: '\\b(?:you\\s+(?:must|have\\s+to|are\\s+required\\s+to|should\\s+always)|(?:ai|llm|assistant|model|agent)\\s*[,:]\\s*(?:you|please|always|first)|as\\s+an\\s+ai\\b|(?:before|prior\\s+to)\\s+(?:using|calling|invoking|running)\\s+(?:this|any)\\s+tool\\b|this\\s+is\\s+(?:very\\s+)?(?:important|critical|mandatory)\\s*[:!]|otherwise\\s+the\\s+tool\\s+will\\s+(?:not\\s+work|fail))' },
  { id: 'SP-POISON-SECRETS', title: 'request to read secrets or credentials', category: 'poisoning', severity: 'critical', atlas: 'AML.T0055', target: 'description', pattern: `\\b(?:read|cat|open|load|include|pass|provide|attach|append|paste|copy|extract|collect|gather|dump|print|fetch|put)\\b[^.\\n]{0,60}${SECRET_PLACES}` },
  { id: 'SP-POISON-EXFIL', title: 'request to send data elsewhere', category: 'poisoning', severity: 'critical', atlas: 'AML.T0086', target: 'description', pattern: '\\b(?:send|post|upload|forward|exfiltrate|transmit|copy|report|bcc|cc|mirror|leak)\\b[^.\\n]{0,80}\\b(?:to|at|into)\\s+(?:https?:\\/\\/|[\\w.+-]+@[\\w-]+\\.[\\w.]+|(?:the\\s+)?(?:following|this)\\s+(?:url|address|endpoint|webhook|email)|(?:[\\w-]+\\.)+(?:com|net|org|io|xyz|ru|cn|top|site|info|dev)\\b)' },
  { id: 'SP-POISON-HIDDENPARAM', title: 'parameter meant to carry context the user does not see', category: 'poisoning', severity: 'high', atlas: 'AML.T0057', target: 'param_name', pattern: '^(?:sidenote|side_note|note_to_self|context|conversation|history|chat_history|system_prompt|hidden|debug_info|metadata_extra|feedback)$' },
  // (b) tool shadowing: a description that tells the model how to use other tools.
  { id: 'SP-SHADOW-OTHERTOOL', title: 'description instructs how to use another tool', category: 'shadowing', severity: 'high', atlas: 'AML.T0051.001', target: 'description', pattern: "\\b(?:when|whenever|if|before|after)\\b[^.\\n]{0,60}\\b(?:using|calling|invoking|use|call|invoke|runs?)\\b[^.\\n]{0,30}(?:\\b(?:other|another|any|the)\\s+(?:[\\w`'\"-]+\\s+)?tools?\\b|`[\\w.-]+`\\s+tool)|\\binstead\\s+of\\s+(?:using\\s+)?(?:the\\s+)?[`'\"]?[\\w.-]+[`'\"]?\\s+tool\\b|\\b(?:all|every|any)\\s+(?:other\\s+)?(?:emails?|messages?|requests?|calls?)\\s+(?:must|should)\\s+(?:be\\s+)?(?:sent|routed|redirected|go)\\b|\\bchange\\s+the\\s+(?:recipient|destination|address|url|account)\\b" },
  // (a) vulnerability patterns in parameters.
  { id: 'SP-VULN-SHELL', title: 'parameter takes a shell command', category: 'vulnerability', severity: 'high', atlas: 'AML.T0053', target: 'param_name', pattern: '^(?:cmd|command|commands|shell|shell_command|bash|sh|script|exec|execute|cmdline|command_line|powershell)$' },
  { id: 'SP-VULN-EVAL', title: 'parameter takes code to evaluate', category: 'vulnerability', severity: 'high', atlas: 'AML.T0053', target: 'param_name', pattern: '^(?:code|eval|expression|expr|python|javascript|js|source_code|snippet|lambda|template)$' },
  { id: 'SP-VULN-PATH', title: 'parameter takes a file system path (traversal)', category: 'vulnerability', severity: 'medium', atlas: 'AML.T0053', target: 'param_name', pattern: '^(?:path|paths|file|filename|file_path|filepath|dir|directory|folder|dest|destination|source|src|target_path)$' },
  { id: 'SP-VULN-SQL', title: 'parameter takes SQL', category: 'vulnerability', severity: 'medium', atlas: 'AML.T0053', target: 'param_name', pattern: '^(?:sql|query_sql|sql_query|raw_sql|statement|where|where_clause|order_by)$' },
  { id: 'SP-VULN-URL', title: 'parameter takes a URL (SSRF)', category: 'vulnerability', severity: 'medium', atlas: 'AML.T0053', target: 'param_name', pattern: '^(?:url|uri|urls|endpoint|webhook|webhook_url|callback|callback_url|host|hostname|link|href)$' },
  { id: 'SP-VULN-DESC-EXEC', title: 'description says the tool executes arbitrary input', category: 'vulnerability', severity: 'high', atlas: 'AML.T0053', target: 'description', pattern: '\\b(?:executes?|runs?|evaluates?|evals?)\\s+(?:any|arbitrary|the\\s+given|raw|user[- ]supplied)\\s+(?:shell\\s+)?(?:commands?|code|scripts?|sql|expressions?)' },
  { id: 'SP-VULN-UNBOUNDED', title: 'string parameter without maxLength', category: 'vulnerability', severity: 'low', atlas: 'AML.T0029', target: 'param', check: 'unbounded_string' },
  // (c) resource use.
  { id: 'SP-RES-UNBOUNDED-INT', title: 'count, size or time parameter without a maximum', category: 'resource', severity: 'low', atlas: 'AML.T0034', target: 'param', check: 'unbounded_integer', nameFilter: '(?:limit|count|max|size|num|number|timeout|duration|depth|pages?|retries|iterations|batch)' },
  { id: 'SP-RES-UNBOUNDED-ARRAY', title: 'array parameter without maxItems', category: 'resource', severity: 'low', atlas: 'AML.T0034', target: 'param', check: 'unbounded_array' },
  { id: 'SP-RES-FREE-OBJECT', title: 'object parameter that accepts any properties', category: 'resource', severity: 'low', atlas: 'AML.T0029', target: 'param', check: 'free_object' },
  { id: 'SP-RES-DESC', title: 'description announces heavy or unbounded resource use', category: 'resource', severity: 'medium', atlas: 'AML.T0034', target: 'description', pattern: '\\b(?:runs?\\s+(?:indefinitely|forever|continuously)|infinite\\s+loop|no\\s+(?:time\\s+)?limit|unlimited|mines?\\s+(?:crypto|bitcoin|monero)|spawns?\\s+(?:many|multiple|unlimited)\\s+(?:processes|threads)|(?:entire|whole)\\s+(?:disk|file\\s*system|drive|internet))\\b' },
  // (d) privacy impact, from names and descriptions.
  { id: 'SP-PRIV-PII', title: 'handles personal identifiers', category: 'privacy', severity: 'medium', atlas: 'AML.T0057', target: 'text', pattern: '\\b(?:ssn|social[ _-]?security|passport|driver\'?s?[ _-]?licen[cs]e|date[ _-]?of[ _-]?birth|dob|national[ _-]?id|home[ _-]?address|phone[ _-]?numbers?|personal[ _-]?data|pii)\\b' },
  { id: 'SP-PRIV-CREDENTIALS', title: 'handles credentials', category: 'privacy', severity: 'medium', atlas: 'AML.T0055', target: 'text', pattern: '\\b(?:passwords?|passwd|api[ _-]?keys?|secret[ _-]?keys?|access[ _-]?tokens?|private[ _-]?keys?|credentials?|auth[ _-]?tokens?|session[ _-]?cookies?)\\b' },
  { id: 'SP-PRIV-HEALTH', title: 'handles health data', category: 'privacy', severity: 'medium', atlas: 'AML.T0057', target: 'text', pattern: '\\b(?:medical|diagnos[ie]s|health[ _-]?records?|patients?|prescriptions?|phi|hipaa|allerg(?:y|ies)|symptoms?)\\b' },
  { id: 'SP-PRIV-FINANCIAL', title: 'handles financial data', category: 'privacy', severity: 'medium', atlas: 'AML.T0057', target: 'text', pattern: '\\b(?:credit[ _-]?cards?|card[ _-]?numbers?|cvv|iban|bank[ _-]?accounts?|routing[ _-]?numbers?|salar(?:y|ies)|tax[ _-]?returns?|account[ _-]?balances?)\\b' },
];

/** Cross-provider rules (the engine applies them with the other providers' tools in view). */
export const CROSS_RULES = {
  collision: { id: 'SP-SHADOW-COLLISION', title: 'tool name already used by another provider', category: 'shadowing', severity: 'high', atlas: 'AML.T0053' },
  lookalike: { id: 'SP-SHADOW-LOOKALIKE', title: "tool name looks like another provider's tool", category: 'shadowing', severity: 'high', atlas: 'AML.T0053' },
  mentions: { id: 'SP-SHADOW-MENTIONS', title: "description names another provider's tool", category: 'shadowing', severity: 'high', atlas: 'AML.T0051.001' },
} as const;

/** Weights of each severity in the risk score: score = 1 - Π(1 - w) over the findings. */
export const SEVERITY_WEIGHT: Readonly<Record<Severity, number>> = { low: 0.05, medium: 0.15, high: 0.5, critical: 0.9 };
