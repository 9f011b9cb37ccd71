"""knowledge articles, case articles and their full-text search

`knowledge_article` is Salesforce's Knowledge__kav (one version per article), `case_article` its
CaseArticle: an article attached to a case. An article's words are searched as each database can:

- PostgreSQL: a generated column `SearchVector` (tsvector, english: Title weight A, Summary B, Body__c C;
  HTML tags are not words to its parser) with a GIN index `ix_knowledge_article_SearchVector`.
- SQLite: an FTS5 table `knowledge_article_fts` (porter stemming over unicode61) holding the article's
  Id, Title, Summary and Body__c, kept in step by three triggers on `knowledge_article`. Its rows are found
  by their Id through the index itself (a MATCH on the Id column), so no rowid is relied on.

The models do not describe these objects (`store.knowledge.is_search_object` names them for schema
comparisons). A later migration that rebuilds `knowledge_article` on SQLite (batch mode copies and drops
the table, and its triggers with it) must make the triggers again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

WORDS = ("setweight(to_tsvector('english'::regconfig, coalesce(\"Title\", '')), 'A') || "
         "setweight(to_tsvector('english'::regconfig, coalesce(\"Summary\", '')), 'B') || "
         "setweight(to_tsvector('english'::regconfig, coalesce(\"Body__c\", '')), 'C')")
FTS_ROW = ('("Id", "Title", "Summary", "Body") '
           'VALUES (new."Id", new."Title", new."Summary", new."Body__c")')
FTS_FORGET = ("DELETE FROM knowledge_article_fts WHERE knowledge_article_fts MATCH '\"Id\" : \"' || old.\"Id\" || '\"' "
              "AND \"Id\" = old.\"Id\"")
SQLITE = (
    "CREATE VIRTUAL TABLE knowledge_article_fts USING fts5(\"Id\", \"Title\", \"Summary\", \"Body\", "
    "tokenize = 'porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER knowledge_article_fts_insert AFTER INSERT ON knowledge_article BEGIN "
    f"INSERT INTO knowledge_article_fts {FTS_ROW}; END",
    f"CREATE TRIGGER knowledge_article_fts_update AFTER UPDATE OF \"Id\", \"Title\", \"Summary\", \"Body__c\" "
    f"ON knowledge_article BEGIN {FTS_FORGET}; INSERT INTO knowledge_article_fts {FTS_ROW}; END",
    f"CREATE TRIGGER knowledge_article_fts_delete AFTER DELETE ON knowledge_article BEGIN {FTS_FORGET}; END",
)


def upgrade() -> None:
    op.create_table(
        "knowledge_article",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("KnowledgeArticleId", sa.String(length=18), nullable=False),
        sa.Column("ArticleNumber", sa.String(length=30), nullable=False),
        sa.Column("Title", sa.String(length=255), nullable=False),
        sa.Column("Summary", sa.String(length=1000), nullable=True),
        sa.Column("UrlName", sa.String(length=255), nullable=False),
        sa.Column("Body__c", sa.Text(), nullable=True),
        sa.Column("PublishStatus", sa.String(length=30), nullable=False),
        sa.Column("Language", sa.String(length=40), nullable=False),
        sa.Column("VersionNumber", sa.Integer(), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("CreatedById", sa.String(length=18), nullable=True),
        sa.Column("LastModifiedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("LastModifiedById", sa.String(length=18), nullable=True),
        sa.Column("LastPublishedDate", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("Id", name="pk_knowledge_article"),
        sa.UniqueConstraint("KnowledgeArticleId", name="uq_knowledge_article_KnowledgeArticleId"),
        sa.UniqueConstraint("ArticleNumber", name="uq_knowledge_article_ArticleNumber"),
        sa.UniqueConstraint("UrlName", name="uq_knowledge_article_UrlName"),
    )
    op.create_table(
        "case_article",
        sa.Column("Id", sa.String(length=18), nullable=False),
        sa.Column("CaseId", sa.String(length=18), nullable=False),
        sa.Column("KnowledgeArticleId", sa.String(length=18), nullable=False),
        sa.Column("KnowledgeArticleVersionId", sa.String(length=18), nullable=False),
        sa.Column("ArticleLanguage", sa.String(length=40), nullable=False),
        sa.Column("ArticleVersionNumber", sa.Integer(), nullable=True),
        sa.Column("IsSharedByEmail", sa.Boolean(), nullable=False),
        sa.Column("CreatedDate", sa.DateTime(timezone=True), nullable=False),
        sa.Column("CreatedById", sa.String(length=18), nullable=True),
        sa.ForeignKeyConstraint(["CaseId"], ["case.Id"], name="fk_case_article_CaseId_case"),
        sa.ForeignKeyConstraint(["KnowledgeArticleId"], ["knowledge_article.KnowledgeArticleId"],
                                name="fk_case_article_KnowledgeArticleId_knowledge_article"),
        sa.PrimaryKeyConstraint("Id", name="pk_case_article"),
        sa.UniqueConstraint("CaseId", "KnowledgeArticleId", name="uq_case_article_CaseId"),
    )
    op.create_index("ix_case_article_KnowledgeArticleId", "case_article", ["KnowledgeArticleId"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(f'ALTER TABLE knowledge_article ADD COLUMN "SearchVector" tsvector '
                   f"GENERATED ALWAYS AS ({WORDS}) STORED")
        op.execute('CREATE INDEX "ix_knowledge_article_SearchVector" ON knowledge_article USING gin ("SearchVector")')
    elif dialect == "sqlite":
        for statement in SQLITE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER knowledge_article_fts_{trigger}")
        op.execute("DROP TABLE knowledge_article_fts")
    op.drop_index("ix_case_article_KnowledgeArticleId", table_name="case_article")
    op.drop_table("case_article")
    op.drop_table("knowledge_article")  # on PostgreSQL its search column and index go with it
