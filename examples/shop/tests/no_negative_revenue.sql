-- A singular test: returns the failing rows.
select * from {{ ref('customer_revenue') }} where revenue < 0
