-- Recorded text may hold U+0000 (a pasted binary log, a hostile event). jsonb cannot
-- represent it, so one such note failed the whole push that carried it, again at every
-- retry. json keeps the text exactly as sent; nothing here is queried inside these values
-- but a record body's ->>, which json answers too.
ALTER TABLE records ALTER COLUMN body TYPE json USING body::json;
ALTER TABLE incident_fields ALTER COLUMN value TYPE json USING value::json;
ALTER TABLE refusals ALTER COLUMN answer TYPE json USING answer::json;
